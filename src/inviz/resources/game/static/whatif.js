// Deep Reveal's "what if" panel: after a round, paint (reveal) or erase parts of the image and see
// what the network answers. The mask is a grid of opacities sent to the server as base64.
"use strict";

(function () {
  const $ = (sel) => document.querySelector(sel);
  const panel = { round: null, grid: 0, mask: null, initial: null, image: null, busy: false, dirty: false, left: 0 };

  function b64ToBytes(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function bytesToB64(bytes) {
    let bin = "";
    for (let i = 0; i < bytes.length; i += 4096) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096));
    return btoa(bin);
  }

  function render() {
    const canvas = $("#whatif-canvas");
    const img = panel.image;
    if (!img) return;
    const s = img.naturalWidth;
    canvas.width = s;
    canvas.height = s;
    const g = panel.grid;
    const maskCanvas = document.createElement("canvas");
    maskCanvas.width = g;
    maskCanvas.height = g;
    const mctx = maskCanvas.getContext("2d");
    const data = mctx.createImageData(g, g);
    for (let i = 0; i < g * g; i++) {
      data.data[4 * i] = 255;
      data.data[4 * i + 1] = 255;
      data.data[4 * i + 2] = 255;
      data.data[4 * i + 3] = panel.mask[i];
    }
    mctx.putImageData(data, 0, 0);
    const layer = document.createElement("canvas");
    layer.width = s;
    layer.height = s;
    const lctx = layer.getContext("2d");
    lctx.drawImage(img, 0, 0);
    lctx.globalCompositeOperation = "destination-in";
    lctx.imageSmoothingEnabled = true;
    lctx.drawImage(maskCanvas, 0, 0, s, s);
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, s, s);
    ctx.drawImage(layer, 0, 0);
  }

  function showPrediction(out) {
    const p = out.prediction;
    const top = p.top.map((t) => t.name + " " + Math.round(100 * t.p) + "%").join(", ");
    $("#whatif-pred").textContent =
      "The network says " + p.label + " (" + top + "); " + p.true_class + ": " + Math.round(100 * p.true_prob) + "%" +
      (out.edits_left >= 0 ? " · " + out.edits_left + " tries left" : "");
    panel.left = out.edits_left;
  }

  async function send() {
    if (panel.busy) { panel.dirty = true; return; }
    if (panel.left <= 0) return;
    panel.busy = true;
    try {
      const out = await window.InvizGame.api(
        "POST", "/api/rounds/" + encodeURIComponent(panel.round.token) + "/whatif", { mask: bytesToB64(panel.mask) }
      );
      showPrediction(out);
    } catch (err) {
      $("#whatif-pred").textContent = (err && err.detail) || String(err);
    } finally {
      panel.busy = false;
      if (panel.dirty) { panel.dirty = false; send(); }
    }
  }

  function paintAt(ev) {
    const canvas = $("#whatif-canvas");
    const rect = canvas.getBoundingClientRect();
    const g = panel.grid;
    const gx = ((ev.clientX - rect.left) / rect.width) * g;
    const gy = ((ev.clientY - rect.top) / rect.height) * g;
    const reveal = document.querySelector("input[name=brush]:checked").value === "reveal";
    const r = Math.max(1, g / 16);
    for (let y = Math.max(0, Math.floor(gy - r)); y < Math.min(g, Math.ceil(gy + r)); y++) {
      for (let x = Math.max(0, Math.floor(gx - r)); x < Math.min(g, Math.ceil(gx + r)); x++) {
        if ((x + 0.5 - gx) ** 2 + (y + 0.5 - gy) ** 2 <= r * r) panel.mask[y * g + x] = reveal ? 255 : 0;
      }
    }
    render();
  }

  function init() {
    const canvas = $("#whatif-canvas");
    let painting = false;
    canvas.addEventListener("pointerdown", (ev) => { painting = true; canvas.setPointerCapture(ev.pointerId); paintAt(ev); });
    canvas.addEventListener("pointermove", (ev) => { if (painting) paintAt(ev); });
    const stop = () => { if (painting) { painting = false; send(); } };
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    $("#whatif-all").addEventListener("click", () => { panel.mask.fill(255); render(); send(); });
    $("#whatif-none").addEventListener("click", () => { panel.mask.fill(0); render(); send(); });
    $("#whatif-reset").addEventListener("click", () => { panel.mask.set(panel.initial); render(); send(); });
  }

  async function open(round) {
    const box = $("#whatif");
    box.hidden = true;
    box.dataset.ready = "0";
    panel.round = round;
    try {
      const out = await window.InvizGame.api("GET", "/api/rounds/" + encodeURIComponent(round.token) + "/whatif");
      panel.grid = out.grid;
      panel.initial = b64ToBytes(out.mask);
      panel.mask = panel.initial.slice();
      const img = new Image();
      img.onload = () => { panel.image = img; render(); box.hidden = false; box.dataset.ready = "1"; };
      img.src = out.image;
      showPrediction(out);
    } catch (err) {
      box.hidden = true;
    }
  }

  document.addEventListener("DOMContentLoaded", init);
  window.InvizWhatIf = { open, panel, send };
})();
