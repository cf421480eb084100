// Deep Reveal: the game page. Plain JS, no dependencies. Everything typed by people is put on the
// page with textContent (never innerHTML), and the page runs under a strict Content-Security-Policy.
"use strict";

(function () {
  const $ = (sel) => document.querySelector(sel);
  const state = { config: null, player: null, round: null, askedQuestionnaire: false, busy: false };
  const VIEWS = ["signup", "round", "features", "result", "board", "questionnaire", "done"];

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function show(name) {
    for (const v of VIEWS) $("#view-" + v).hidden = v !== name;
    document.body.dataset.view = name;
    $("#nav-board").hidden = !state.player || name === "board" || name === "signup";
    window.scrollTo(0, 0);
  }

  function showError(message) {
    const box = $("#error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function api(method, path, body) {
    const opts = { method, headers: {}, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw { status: 0, detail: "The game server cannot be reached; try again in a moment." };
    }
    let data = null;
    if (resp.status !== 204) {
      try { data = await resp.json(); } catch (e) { data = null; }
    }
    if (!resp.ok) throw { status: resp.status, detail: (data && data.detail) || resp.statusText };
    return data;
  }

  // one request at a time from the buttons (no double answers on a double click)
  async function guarded(fn) {
    if (state.busy) return;
    state.busy = true;
    document.body.classList.add("busy");
    try {
      showError("");
      await fn();
    } catch (err) {
      if (err && err.status === 401) { state.player = null; show("signup"); }
      else if (err && (err.status === 410 || err.status === 404)) { showError(err.detail); await nextRound(); }
      else showError((err && err.detail) || String(err));
    } finally {
      state.busy = false;
      document.body.classList.remove("busy");
    }
  }

  function setPlayer(p) {
    state.player = p;
    $("#who").textContent = p ? p.nickname : "";
    $("#score").textContent = p ? p.points + " pts" : "";
  }

  // ---------------------------------------------------------------- sign-up
  function initSignup() {
    const select = $("[data-testid=language]");
    const names = { en: "English", it: "Italiano", de: "Deutsch", fr: "Français", es: "Español" };
    for (const code of state.config.languages) select.append(el("option", { value: code }, names[code] || code));
    $("#signup-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = ev.target;
      guarded(async () => {
        const out = await api("POST", "/api/players", {
          nickname: f.nickname.value,
          ai_background: f.ai.value === "yes",
          language: f.language.value,
        });
        setPlayer(out.player);
        await nextRound();
      });
    });
  }

  // ---------------------------------------------------------------- rounds
  async function nextRound() {
    const out = await api("POST", "/api/rounds");
    if (out.questionnaire_due && !state.askedQuestionnaire) {
      state.askedQuestionnaire = true;
      state.round = out.round;
      await openQuestionnaire();
      return;
    }
    if (!out.round) {
      $("#done-message").textContent = out.message;
      show("done");
      return;
    }
    showRound(out.round);
  }

  function showRound(r) {
    state.round = r;
    if (r.status === "guessed") { openFeatures(r, null); return; }
    $("[data-testid=round-number]").textContent = "Image " + r.number;
    $("[data-testid=revealed]").textContent = r.percent + "% revealed";
    $("#meter-fill").style.width = Math.round((100 * (r.level + 1)) / r.n_levels) + "%";
    const img = $("#round-image");
    img.src = r.image;
    const hint = $("#hint");
    hint.textContent = r.hints_left > 0 ? "Hint (" + r.hints_left + " left)" : "No hints left";
    hint.disabled = r.hints_left === 0;
    $("#resign").disabled = !r.can_resign;
    const box = $("#choices");
    box.replaceChildren();
    r.choices.forEach((c, i) => {
      const b = el("button", { type: "button", class: "choice", dataset: { choice: String(c.id), testid: "choice" } }, c.name);
      b.title = "Key " + (i + 1);
      b.addEventListener("click", () => guess(c));
      box.append(b);
    });
    show("round");
  }

  function guess(choice) {
    guarded(async () => {
      const r = await api("POST", "/api/rounds/" + encodeURIComponent(state.round.token) + "/guess", { choice: choice.id });
      openFeatures(r, choice.name);
    });
  }

  function openFeatures(r, chosenName) {
    state.round = r;
    const chosen = chosenName || (r.choices.find((c) => c.id === r.guessed) || {}).name || "your class";
    $("#chosen").textContent = chosen;
    $("#features-image").src = r.image;
    const box = $("#feature-inputs");
    box.replaceChildren();
    for (let i = 0; i < r.features_max; i++) {
      const input = el("input", {
        type: "text",
        name: "feature",
        maxlength: String(state.config.max_text_length),
        autocomplete: "off",
        spellcheck: "true",
        "aria-label": "Feature " + (i + 1),
        dataset: { testid: "feature" },
      });
      input.placeholder = i < r.features_min ? "What did you see?" : "(optional)";
      if (i < r.features_min) input.required = true;
      box.append(input);
    }
    $("#skip-features").hidden = r.features_min > 0;
    show("features");
    box.querySelector("input").focus();
  }

  function sendFeatures(texts) {
    guarded(async () => {
      const r = await api("POST", "/api/rounds/" + encodeURIComponent(state.round.token) + "/features", { texts });
      showResult(r);
    });
  }

  function showResult(r) {
    state.round = r;
    const res = r.result;
    const verdict = $("#verdict");
    verdict.className = res.correct === true ? "right" : res.correct === false ? "wrong" : "resigned";
    verdict.textContent = res.correct === true ? "Right!" : res.correct === false ? "Not this time" : "You gave up";
    $("#true-class").textContent = res.true_class;
    $("#result-image").src = r.image;
    const pts = res.correct ? "+" + res.points + " points" : "No points";
    $("#points").textContent = pts + " · total " + res.total_points;
    const list = $("#your-features");
    list.replaceChildren(...res.features.map((t) => el("li", {}, t)));
    $("#your-features-box").hidden = res.features.length === 0;
    if (state.player) setPlayer(Object.assign({}, state.player, { points: res.total_points }));
    if (window.InvizWhatIf && state.config.what_if) window.InvizWhatIf.open(r, state.config);
    else $("#whatif").hidden = true;
    show("result");
  }

  function initRound() {
    $("#hint").addEventListener("click", () =>
      guarded(async () => showRound(await api("POST", "/api/rounds/" + encodeURIComponent(state.round.token) + "/hint")))
    );
    $("#resign").addEventListener("click", () =>
      guarded(async () => showResult(await api("POST", "/api/rounds/" + encodeURIComponent(state.round.token) + "/resign")))
    );
    $("#features-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const texts = [...document.querySelectorAll("#feature-inputs input")].map((i) => i.value.trim()).filter((t) => t);
      sendFeatures(texts);
    });
    $("#skip-features").addEventListener("click", () => sendFeatures([]));
    $("#next").addEventListener("click", () => guarded(nextRound));
    document.addEventListener("keydown", (ev) => {
      if (document.body.dataset.view !== "round" || ev.target.tagName === "INPUT") return;
      const n = parseInt(ev.key, 10);
      const buttons = document.querySelectorAll("#choices .choice");
      if (n >= 1 && n <= buttons.length) buttons[n - 1].click();
      else if (ev.key === "h" && !$("#hint").disabled) $("#hint").click();
    });
  }

  // ---------------------------------------------------------------- leaderboard
  async function openBoard() {
    const b = await api("GET", "/api/leaderboard");
    const rows = b.top.map((t) => {
      const tr = el("tr", t.nickname === b.me.nickname ? { class: "me" } : {});
      tr.append(el("td", {}, t.rank), el("td", {}, t.nickname), el("td", {}, t.points), el("td", {}, t.rounds));
      return tr;
    });
    $("#board-rows").replaceChildren(...rows);
    $("#board-me").textContent =
      "You: rank " + b.me.rank + " of " + b.players + " with " + b.me.points + " points in " + b.me.rounds + " rounds.";
    show("board");
  }

  function initBoard() {
    for (const id of ["#nav-board", "#result-board", "#done-board"]) $(id).addEventListener("click", () => guarded(openBoard));
    $("#board-back").addEventListener("click", () => guarded(nextRound));
  }

  // ---------------------------------------------------------------- questionnaire
  async function openQuestionnaire() {
    const form = await api("GET", "/api/questionnaire");
    const sus = $("#sus-items");
    sus.replaceChildren();
    form.sus.forEach((text, i) => {
      const fs = el("fieldset", { class: "likert", dataset: { testid: "sus-item" } });
      fs.append(el("legend", {}, i + 1 + ". " + text));
      for (let v = 1; v <= 5; v++) {
        const lab = el("label", { class: "inline" });
        const input = el("input", { type: "radio", name: "sus" + i, value: String(v) });
        input.required = true;
        lab.append(input, document.createTextNode(" " + v));
        fs.append(lab);
      }
      sus.append(fs);
    });
    const tlx = $("#tlx-items");
    tlx.replaceChildren();
    for (const item of form.tlx) {
      const wrap = el("div", { class: "tlx", dataset: { testid: "tlx-item" } });
      wrap.append(el("p", { class: "tlx-q" }, item.name + ": " + item.question));
      const out = el("output", { class: "tlx-value" }, "50");
      const range = el("input", {
        type: "range", min: "0", max: "100", step: String(form.tlx_step), value: "50", name: "tlx-" + item.key,
        "aria-label": item.name,
      });
      range.addEventListener("input", () => { out.textContent = range.value; });
      const row = el("div", { class: "tlx-row" });
      row.append(el("span", { class: "anchor" }, item.low), range, el("span", { class: "anchor" }, item.high), out);
      wrap.append(row);
      tlx.append(wrap);
    }
    show("questionnaire");
  }

  function initQuestionnaire() {
    $("#questionnaire-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = ev.target;
      const sus = [];
      for (let i = 0; i < 10; i++) sus.push(parseInt(f["sus" + i].value, 10));
      const tlx = [...f.querySelectorAll("input[type=range]")].map((r) => parseInt(r.value, 10));
      guarded(async () => { await api("POST", "/api/questionnaire", { sus, tlx }); await nextRound(); });
    });
    $("#skip-questionnaire").addEventListener("click", () =>
      guarded(async () => { await api("POST", "/api/questionnaire", { skip: true }); await nextRound(); })
    );
  }

  // ---------------------------------------------------------------- start
  async function start() {
    try {
      state.config = await api("GET", "/api/config");
      document.title = state.config.title;
      initSignup();
      initRound();
      initBoard();
      initQuestionnaire();
      setPlayer((await api("GET", "/api/session")).player);
      if (state.player) await nextRound();
      else show("signup");
    } catch (err) {
      showError((err && err.detail) || String(err));
    } finally {
      document.body.dataset.ready = "1";
    }
  }

  window.InvizGame = { api, state, guarded, showError };
  document.addEventListener("DOMContentLoaded", start);
})();
