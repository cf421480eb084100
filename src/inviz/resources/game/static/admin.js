// Deep Reveal admin page: progress and the export download. The admin token stays in this tab
// (sessionStorage) and is sent as "Authorization: Bearer"; every value is shown with textContent.
"use strict";

(function () {
  const $ = (sel) => document.querySelector(sel);
  const KEY = "inviz-admin-token";

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function showError(msg) {
    $("#error").textContent = msg || "";
    $("#error").hidden = !msg;
  }

  async function call(path) {
    const resp = await fetch(path, { headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) } });
    if (!resp.ok) {
      let detail = resp.statusText;
      try { detail = (await resp.json()).detail; } catch (e) { /* not JSON */ }
      throw { status: resp.status, detail };
    }
    return resp;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number" && !Number.isInteger(v)) return v.toFixed(2);
    if (typeof v === "boolean") return v ? "yes" : "no";
    return v;
  }

  function table(headId, bodyId, rows, columns) {
    $(headId).replaceChildren(el("tr"));
    for (const c of columns) $(headId).firstChild.append(el("th", c));
    $(bodyId).replaceChildren(
      ...rows.map((r) => {
        const tr = el("tr");
        for (const c of columns) tr.append(el("td", fmt(r[c])));
        return tr;
      })
    );
  }

  function render(p) {
    const s = p.summary;
    const cards = [
      ["players", s.players],
      ["flagged by screening", s.flagged_players],
      ["plays", s.plays],
      ["wins / losses / resigns", s.wins + " / " + s.losses + " / " + s.resigns],
      ["complete maps", s.complete_maps + " / " + s.maps + " (target " + s.plays_per_map + ")"],
      ["SUS (paper 80.9)", s.sus.mean === null ? "–" : s.sus.mean.toFixed(1) + " (n " + s.sus.n + ")"],
      ["raw TLX (paper 38.1)", s.tlx.mean === null ? "–" : s.tlx.mean.toFixed(1) + " (n " + s.tlx.n + ")"],
    ];
    $("#cards").replaceChildren(
      ...cards.map(([label, value]) => {
        const d = el("div", null, { class: "card" });
        d.append(el("b", value), el("span", label));
        return d;
      })
    );
    const most = Math.max(1, ...p.plays_histogram.map((h) => h.maps));
    $("#histogram").replaceChildren(
      ...p.plays_histogram.map((h) => {
        const tr = el("tr");
        const bar = el("span", null, { class: "bar-cell" });
        bar.style.width = Math.round((200 * h.maps) / most) + "px";
        const td = el("td");
        td.append(bar);
        tr.append(el("td", h.plays), el("td", h.maps), td);
        return tr;
      })
    );
    const cols = ["maps", "plays", "complete", "wins", "losses", "resigns", "mean_hints"];
    table("#by-layer-head", "#by-layer", p.by_layer, ["layer", ...cols]);
    table("#by-class-head", "#by-class", p.by_class, ["class", ...cols]);
    table("#players-head", "#players", p.players, [
      "player_id", "nickname", "rounds", "points", "ai_background", "language",
      "screening_rounds", "screening_failures", "passed_screening", "questionnaire",
    ]);
  }

  async function refresh() {
    showError("");
    try {
      render(await (await call("/api/admin/progress")).json());
      $("#login").hidden = true;
      $("#progress").hidden = false;
      document.body.dataset.view = "progress";
    } catch (err) {
      if (err.status === 403) sessionStorage.removeItem(KEY);
      $("#login").hidden = false;
      $("#progress").hidden = true;
      document.body.dataset.view = "login";
      showError(err.detail || String(err));
    }
  }

  async function download() {
    try {
      const blob = await (await call("/api/admin/export.zip")).blob();
      const a = el("a", null, { href: URL.createObjectURL(blob), download: "game_export.zip" });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      showError(err.detail || String(err));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, ev.target.token.value);
      ev.target.reset();
      refresh();
    });
    $("#refresh").addEventListener("click", refresh);
    $("#download").addEventListener("click", download);
    $("#logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      location.reload();
    });
    if (sessionStorage.getItem(KEY)) refresh();
    document.body.dataset.ready = "1";
  });
})();
