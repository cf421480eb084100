/* inviz explorer: a static, server-free viewer of INVs (data in data.js as window.INVIZ). */
(function () {
  "use strict";
  const D = window.INVIZ;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  };
  const fmt = (x, d) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));

  /* ---------- state <-> URL hash (deep links) ---------- */
  const state = { view: "image", image: null, cls: null, layer: null, card: null, merged: true };
  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    state.view = p.get("view") === "global" ? "global" : "image";
    state.merged = p.get("maps") !== "clusters";
    state.image = p.get("image");
    state.layer = p.get("layer");
    state.card = p.get("card");
    state.cls = p.has("class") ? p.get("class") : null;
    if (state.image && D.images[state.image]) state.cls = String(D.images[state.image].label);
    if (state.cls === null || !D.classes.some(c => String(c.label) === state.cls)) state.cls = String(D.classes[0].label);
    const cls = D.classes.find(c => String(c.label) === state.cls);
    if (state.view === "image" && (!state.image || !D.images[state.image])) state.image = cls.images[0] || null;
  }
  function writeHash() {
    const p = new URLSearchParams();
    p.set("view", state.view);
    p.set("class", state.cls);
    if (state.view === "image" && state.image) p.set("image", state.image);
    if (!state.merged) p.set("maps", "clusters");
    if (state.layer) p.set("layer", state.layer);
    if (state.card) p.set("card", state.card);
    const h = "#" + p.toString();
    if (location.hash !== h) history.replaceState(null, "", h);
  }

  /* ---------- tiles: one sprite per image, tile i at x = -i * T ---------- */
  function tile(imageId, index, size, extraClass) {
    const img = D.images[imageId];
    const scale = size / D.tile;
    const t = el("div", { class: "tile " + (extraClass || ""), role: "img" });
    t.style.width = t.style.height = size + "px";
    t.style.backgroundImage = `url("${img.sprite}")`;
    t.style.backgroundSize = `${img.n_tiles * D.tile * scale}px ${size}px`;
    t.style.backgroundPosition = `${-index * size}px 0px`;
    return t;
  }

  /* ---------- sidebar: class and image pickers, view toggles ---------- */
  function renderSidebar() {
    const sel = $("#class-select");
    sel.replaceChildren(...D.classes.map(c => el("option", { value: String(c.label), text: `${c.name} (${c.images.length})` })));
    sel.value = state.cls;
    const cls = D.classes.find(c => String(c.label) === state.cls);
    const list = $("#image-list");
    list.replaceChildren(...cls.images.map(id => {
      const im = D.images[id];
      const item = el("button", { class: "thumb" + (id === state.image && state.view === "image" ? " active" : ""),
        "data-image": id, title: id, onclick: () => { Object.assign(state, { view: "image", image: id, card: null, layer: null }); update(); } },
        tile(id, 0, 56), el("span", { text: `${id.split("/").pop()} · ${fmt(100 * im.confidence, 1)} %` }));
      return item;
    }));
    $("#toggle-merged").checked = state.merged;
    $("#tab-image").classList.toggle("active", state.view === "image");
    $("#tab-global").classList.toggle("active", state.view === "global");
  }

  /* ---------- image view: one column per layer, cluster cards ---------- */
  function labelRows(labels, best, max) {
    return el("ol", { class: "labels" }, ...labels.slice(0, D.top_labels).map(([lab, score]) => {
      const bar = el("span", { class: "bar" });
      bar.style.width = (max > 0 ? Math.max(0, score) / max * 100 : 0) + "%";
      return el("li", { class: best.includes(lab) ? "best" : "", "data-label": lab }, bar,
        el("span", { class: "lab", text: lab }), el("span", { class: "score", text: fmt(score, 2) }));
    }));
  }
  function card(imageId, c, max) {
    const selected = state.card === c.key;
    const weight = el("div", { class: "weight" }, el("span", { class: "wbar" }));
    weight.firstChild.style.width = Math.min(100, c.weight) + "%";
    const stats = c.source === "transfer" ? `transferred · confidence ${fmt(c.confidence, 2)} · coverage ${fmt(100 * c.coverage, 0)} %`
      : c.plays ? `${c.wins} wins · ${c.losses} losses · ${c.resigns} resigns · ${fmt(c.mean_hints, 1)} hints`
                : "not played";
    return el("article", { class: "card" + (selected ? " selected" : ""), "data-key": c.key, "data-testid": "card", tabindex: "0",
      title: c.narrative || null,
      onclick: () => { state.card = c.key; state.layer = c.layer; update(); } },
      tile(imageId, c.tile, D.card_px),
      el("header", {}, el("strong", { text: fmt(c.weight, 1) + " %" }), el("span", { text: ` · ${c.n_fmaps} fmaps` })),
      weight,
      c.labels.length ? labelRows(c.labels, c.best, max) : el("p", { class: "nolabel", text: "no label" }),
      el("p", { class: "stats", text: stats }));
  }
  function detail(imageId, c) {
    if (!c) return el("p", { class: "hint", text: "Click a cluster card for its details." });
    const members = c.members.length > 1 ? `merged from cluster maps ${c.members.join(", ")}` : `cluster map ${c.members[0]}`;
    return el("div", { "data-testid": "detail" },
      el("h3", { text: `${c.layer} — ${c.kind === "merged" ? "merged map " : "cluster map "}${c.id}` }),
      tile(imageId, c.tile, Math.round(1.5 * D.card_px), "big"),
      el("p", { text: `weight ${fmt(c.weight, 2)} % of the layer · ${c.n_fmaps} feature maps · ${members}` }),
      el("p", { text: `game: ${c.plays} plays, ${c.wins} wins, ${c.losses} losses, ${c.resigns} resigns, mean hints ${fmt(c.mean_hints, 2)}` }),
      c.narrative ? el("p", { class: "narrative", "data-testid": "card-narrative", text: c.narrative }) : null,
      el("table", { class: "alllabels" }, el("tr", {}, el("th", { text: "label" }), el("th", { text: "score" })),
        ...c.labels.map(([l, s]) => el("tr", { class: c.best.includes(l) ? "best" : "" }, el("td", { text: l }), el("td", { text: fmt(s, 3) })))));
  }
  function renderImage() {
    const im = D.images[state.image];
    const main = $("#main");
    if (!im) { main.replaceChildren(el("p", { text: "No image." })); return; }
    const kind = state.merged ? "merged" : "cluster";
    const cols = D.layers.map(layer => {
      const cards = (im.cards[kind][layer] || []);
      return el("section", { class: "layer" + (state.layer === layer ? " focus" : ""), "data-layer": layer },
        el("h2", { text: layer }), ...(cards.length ? cards.map(c => card(state.image, c, im.score_max[kind])) :
          [el("p", { class: "nolabel", text: "no cluster map" })]));
    });
    const all = Object.values(im.cards[kind]).flat();
    const chosen = all.find(c => c.key === state.card) || null;
    main.replaceChildren(
      el("div", { class: "head" }, tile(state.image, 0, 2 * D.card_px, "big"),
        el("div", {}, el("h1", { "data-testid": "image-title", text: state.image }),
          el("p", { text: `predicted ${im.pred} (${fmt(100 * im.confidence, 1)} %) · true class ${im.true}` }),
          el("p", { class: "hint", text: `${state.merged ? "Merged cluster maps" : "The game's cluster maps"} per layer, shallow to deep, heaviest first.` }),
          ...(im.narrative ? im.narrative[kind].split("\n\n").map(t => el("p", { class: "narrative", "data-testid": "narrative", text: t })) : [])),
        el("aside", { id: "detail" }, detail(state.image, chosen))),
      el("div", { class: "columns" }, ...cols));
    if (chosen) {
      const node = main.querySelector(`[data-key="${chosen.key}"]`);
      if (node && node.scrollIntoView) node.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  }

  /* ---------- global view: per class, top labels with TCAV and examples ---------- */
  function renderGlobal() {
    const g = (D.global[state.cls] || {});
    const cls = D.classes.find(c => String(c.label) === state.cls);
    const layers = D.layers.filter(l => g[l]);
    if (!state.layer || !g[state.layer]) state.layer = D.global_default_layer in g ? D.global_default_layer : (layers[layers.length - 1] || null);
    const pick = el("select", { id: "layer-select", onchange: e => { state.layer = e.target.value; update(); } },
      ...layers.map(l => el("option", { value: l, text: l })));
    pick.value = state.layer || "";
    const rows = (g[state.layer] || []);
    const max = Math.max(0, ...rows.map(r => r.importance));
    const table = el("table", { class: "global", "data-testid": "global-table" },
      el("tr", {}, ...["rank", "label", "importance", "maps", "TCAV score", "p (adj.)", "significant", "examples"].map(t => el("th", { text: t }))),
      ...rows.map(r => {
        const bar = el("span", { class: "bar" });
        bar.style.width = (max > 0 ? r.importance / max * 100 : 0) + "%";
        const t = r.tcav || {};
        const tested = t.status === "ok";
        return el("tr", { "data-label": r.label },
          el("td", { text: String(r.rank) }), el("td", { class: "lab", text: r.label }),
          el("td", { class: "imp" }, bar, el("span", { text: fmt(r.importance, 1) + " %" })),
          el("td", { text: String(r.n_maps) }),
          el("td", { text: tested ? fmt(t.score, 2) : (t.status ? t.status.replace(/_/g, " ") : "not tested") }),
          el("td", { text: tested ? Number(t.p_adjusted).toPrecision(2) : "–" }),
          el("td", { class: tested ? (t.significant ? "sig" : "nsig") : "", text: tested ? (t.significant ? "yes" : "no") : "–" }),
          el("td", { class: "examples" }, ...r.examples.map(([img, idx, key]) => {
            const b = el("a", { href: "#", title: `${img} (${key})`, onclick: ev => { ev.preventDefault();
              Object.assign(state, { view: "image", image: img, card: key, layer: state.layer, merged: key.startsWith("m") }); update(); } },
              tile(img, idx, 48));
            return b;
          })));
      }));
    const story = ((D.global_narratives || {})[state.cls] || {})[state.layer];
    $("#main").replaceChildren(el("h1", { "data-testid": "global-title", text: `Global explanation of '${cls.name}'` }),
      el("p", {}, "Layer ", pick, el("span", { class: "hint", text: " Importance: mean weight of the cluster maps a label tops (docs/method.md §4). TCAV: sign-count score, corrected p-value." })),
      ...(story ? story.split("\n\n").map(t => el("p", { class: "narrative", "data-testid": "global-narrative", text: t })) : []),
      rows.length ? table : el("p", { text: "No labelled cluster maps for this class and layer." }));
  }

  function update() {
    writeHash();
    renderSidebar();
    if (state.view === "global") renderGlobal(); else renderImage();
    document.body.dataset.ready = "1";
  }

  function init() {
    document.documentElement.style.setProperty("--card", D.card_px + "px");
    $("#title").textContent = D.title;
    $("#subtitle").textContent = D.subtitle;
    $("#class-select").addEventListener("change", e => {
      const cls = D.classes.find(c => String(c.label) === e.target.value);
      Object.assign(state, { cls: e.target.value, image: cls.images[0] || null, card: null, layer: null }); update();
    });
    $("#toggle-merged").addEventListener("change", e => { state.merged = e.target.checked; state.card = null; update(); });
    $("#tab-image").addEventListener("click", () => { state.view = "image"; const cls = D.classes.find(c => String(c.label) === state.cls);
      if (!state.image || String(D.images[state.image].label) !== state.cls) state.image = cls.images[0]; state.layer = null; update(); });
    $("#tab-global").addEventListener("click", () => { state.view = "global"; state.card = null; state.layer = null; update(); });
    window.addEventListener("hashchange", () => { readHash(); update(); });
    readHash();
    update();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
