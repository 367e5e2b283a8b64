// s2cap rating page: one sample at a time; every answer is POSTed at once and saved by the server.
// Caption spans are [start, end) offsets in Unicode code points (Python string indices), not UTF-16 units.
"use strict";

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const WORD = /[\p{L}\p{N}]+(?:['\u2019\-][\p{L}\p{N}]+)*/gu;

let state = null;      // {rater, scale, samples, ratings, position}
let idx = 0;           // index of the sample on screen
let tokens = [];       // words of the caption: {start, end} in code points
let lastSpan = null;   // the span made last, for shift-click extension
let pending = 0;       // requests not answered yet
let chain = Promise.resolve();
let commentTimer = null;
let suppressClick = false;

function sample() { return state.samples[idx]; }
function rating(id = sample().id) {
  if (!state.ratings[id]) state.ratings[id] = { completeness: null, spans: [], comment: "" };
  return state.ratings[id];
}
function setPending(delta) {
  pending += delta;
  document.body.dataset.pending = String(pending);
}
function showSaved(cls, text) { const el = $("saved"); el.className = cls; el.textContent = text; }

// --- talking to the server: in order, one at a time ---------------------------------------------------------

function post(path, body) {
  setPending(1);
  showSaved("busy", "saving...");
  chain = chain.then(async () => {
    try {
      const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                      body: JSON.stringify(body) });
      const data = await res.json();
      if (!res.ok) throw new Error(data.error || res.statusText);
      showSaved("ok", "saved " + new Date().toLocaleTimeString());
    } catch (err) {
      showSaved("err", "NOT SAVED: " + err.message);
    } finally {
      setPending(-1);
    }
  });
  return chain;
}

function save(changes) {
  return post("/api/rating", Object.assign({ rater: state.rater, sample_id: sample().id }, changes));
}

function flushComment(beacon = false) {
  if (commentTimer === null) return;
  clearTimeout(commentTimer);
  commentTimer = null;
  const body = { rater: state.rater, sample_id: sample().id, comment: rating().comment };
  if (beacon && navigator.sendBeacon) {
    navigator.sendBeacon("/api/rating", new Blob([JSON.stringify(body)], { type: "application/json" }));
  } else {
    post("/api/rating", body);
  }
}

// --- caption words and spans --------------------------------------------------------------------------------

function codePointIndex(text) {
  // UTF-16 index -> code point index, for every position of `text`
  const map = new Array(text.length + 1);
  let cp = 0;
  for (let i = 0; i < text.length; i++) {
    map[i] = cp;
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) { map[i + 1] = cp; i++; }
    cp++;
  }
  map[text.length] = cp;
  return map;
}

function spanText(caption, start, end) { return Array.from(caption).slice(start, end).join(""); }

function renderCaption() {
  const s = sample(), caption = s.caption || "";
  const cpi = codePointIndex(caption);
  const chars = Array.from(caption);
  tokens = [];
  for (const m of caption.matchAll(WORD)) tokens.push({ start: cpi[m.index], end: cpi[m.index + m[0].length] });
  const spans = rating().spans;
  const inSpan = (a, b) => spans.some((sp) => sp.start <= a && b <= sp.end);
  const el = $("caption");
  el.textContent = "";
  let pos = 0;
  const gap = (a, b) => {
    if (b <= a) return;
    const g = document.createElement("span");
    g.className = "gap" + (inSpan(a, b) ? " marked" : "");
    g.textContent = chars.slice(a, b).join("");
    el.appendChild(g);
  };
  tokens.forEach((t, i) => {
    gap(pos, t.start);
    const w = document.createElement("span");
    w.className = "w" + (inSpan(t.start, t.end) ? " marked" : "");
    w.dataset.i = String(i);
    w.dataset.start = String(t.start);
    w.dataset.end = String(t.end);
    w.textContent = chars.slice(t.start, t.end).join("");
    el.appendChild(w);
    pos = t.end;
  });
  gap(pos, chars.length);
  $("hcount").textContent = String(spans.length);
}

function setSpans(spans) {
  const caption = sample().caption || "";
  spans.sort((a, b) => a.start - b.start);
  rating().spans = spans.map((sp) => ({ start: sp.start, end: sp.end, text: spanText(caption, sp.start, sp.end) }));
  renderCaption();
  save({ spans: rating().spans });
}

function markRange(start, end) {
  // one span over [start, end); spans it touches are merged into it
  let spans = rating().spans.slice();
  for (const sp of spans) {
    if (sp.start < end && start < sp.end) { start = Math.min(start, sp.start); end = Math.max(end, sp.end); }
  }
  spans = spans.filter((sp) => !(sp.start < end && start < sp.end));
  lastSpan = { start, end };
  spans.push(lastSpan);
  setSpans(spans);
}

function clickWord(i, extend) {
  const t = tokens[i];
  const spans = rating().spans;
  const hit = spans.find((sp) => sp.start <= t.start && t.end <= sp.end);
  if (hit && !extend) {
    setSpans(spans.filter((sp) => sp !== hit));
    lastSpan = null;
  } else if (extend && lastSpan && spans.some((sp) => sp.start === lastSpan.start && sp.end === lastSpan.end)) {
    markRange(Math.min(lastSpan.start, t.start), Math.max(lastSpan.end, t.end));
  } else {
    markRange(t.start, t.end);
  }
}

function selectionToSpan() {
  const sel = window.getSelection();
  if (!sel || sel.isCollapsed) return false;
  const words = Array.from($("caption").querySelectorAll(".w")).filter((w) => sel.containsNode(w, true));
  if (words.length < 2) return false;
  markRange(Number(words[0].dataset.start), Number(words[words.length - 1].dataset.end));
  sel.removeAllRanges();
  return true;
}

// --- the page -----------------------------------------------------------------------------------------------

function renderScale() {
  const el = $("scale");
  el.textContent = "";
  state.scale.forEach((label, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.value = label;
    b.setAttribute("role", "radio");
    b.innerHTML = `<kbd>${i + 1}</kbd>`;
    b.appendChild(document.createTextNode(label));
    b.addEventListener("click", () => setCompleteness(label));
    el.appendChild(b);
  });
}

function setImage(img, path) {
  if (path) { img.src = "/" + path; img.hidden = false; } else { img.removeAttribute("src"); img.alt = "no image"; }
}

function render() {
  const s = sample(), r = rating();
  $("rater").textContent = state.rater;
  $("position").textContent = `sample ${idx + 1} of ${state.samples.length}`;
  $("meta").textContent = [s.id, s.season, s.datetime ? s.datetime.slice(0, 10) : null,
    s.lat != null ? `${s.lat.toFixed(3)}, ${s.lon.toFixed(3)}` : null].filter(Boolean).join(" \u00b7 ");
  setImage($("img-rgb"), s.images && s.images.rgb);
  setImage($("img-fcc"), s.images && s.images.false_colour);
  renderCaption();
  for (const b of $("scale").children) {
    const on = b.dataset.value === r.completeness;
    b.classList.toggle("selected", on);
    b.setAttribute("aria-checked", on ? "true" : "false");
  }
  $("comment").value = r.comment || "";
  const qa = $("qa");
  qa.textContent = "";
  for (const item of s.qa || []) {
    const dt = document.createElement("dt"); dt.textContent = item.question;
    const dd = document.createElement("dd"); dd.textContent = item.answer;
    qa.append(dt, dd);
  }
  const tags = $("tags");
  tags.textContent = "";
  for (const t of s.tags || []) { const e = document.createElement("span"); e.textContent = t; tags.appendChild(e); }
  const done = state.samples.filter((x) => state.ratings[x.id] && state.ratings[x.id].completeness).length;
  $("progress").textContent = `${done} / ${state.samples.length} rated`;
  document.body.dataset.sample = s.id;
  document.body.dataset.index = String(idx);
}

function setCompleteness(label) {
  rating().completeness = label;
  render();
  save({ completeness: label });
}

function go(to) {
  if (!state.samples.length) return;
  flushComment();
  const next = Math.max(0, Math.min(state.samples.length - 1, to));
  if (next === idx) return;
  idx = next;
  lastSpan = null;
  render();
  post("/api/position", { rater: state.rater, sample_id: sample().id });
}

function nextUnrated() {
  const n = state.samples.length;
  for (let k = 1; k <= n; k++) {
    const j = (idx + k) % n, r = state.ratings[state.samples[j].id];
    if (!r || !r.completeness) { go(j); return; }
  }
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target === $("comment")) {
    if (e.key === "Escape") { $("comment").blur(); flushComment(); }
    return;
  }
  const k = e.key;
  if (k >= "1" && k <= String(state.scale.length)) setCompleteness(state.scale[Number(k) - 1]);
  else if (k === "n" || k === "ArrowRight") go(idx + 1);
  else if (k === "p" || k === "ArrowLeft") go(idx - 1);
  else if (k === "u") nextUnrated();
  else if (k === "0") setSpans([]);
  else if (k === "c") $("comment").focus();
  else if (k === "?") $("help").hidden = !$("help").hidden;
  else return;
  e.preventDefault();
}

async function main() {
  const rater = query.get("rater");
  const res = await fetch("/api/state" + (rater ? "?rater=" + encodeURIComponent(rater) : ""));
  state = await res.json();
  if (!res.ok) { showSaved("err", state.error || "cannot load"); return; }
  if (!state.samples.length) { showSaved("err", "no samples in this folder"); return; }
  const at = state.samples.findIndex((s) => s.id === state.position);
  const firstOpen = state.samples.findIndex((s) => !(state.ratings[s.id] && state.ratings[s.id].completeness));
  idx = at >= 0 ? at : Math.max(firstOpen, 0);
  renderScale();
  render();

  $("caption").addEventListener("mouseup", () => { suppressClick = selectionToSpan(); });
  $("caption").addEventListener("click", (e) => {
    if (suppressClick) { suppressClick = false; return; }
    const w = e.target.closest(".w");
    if (w) clickWord(Number(w.dataset.i), e.shiftKey);
  });
  $("comment").addEventListener("input", () => {
    rating().comment = $("comment").value;
    clearTimeout(commentTimer);
    commentTimer = setTimeout(() => flushComment(), 400);
  });
  $("comment").addEventListener("blur", () => flushComment());
  $("prev").addEventListener("click", () => go(idx - 1));
  $("next").addEventListener("click", () => go(idx + 1));
  $("next-unrated").addEventListener("click", nextUnrated);
  $("clear-spans").addEventListener("click", () => setSpans([]));
  $("help-toggle").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });
  document.addEventListener("keydown", onKey);
  // a tab closed mid-comment still delivers it
  window.addEventListener("pagehide", () => flushComment(true));
  document.addEventListener("visibilitychange", () => { if (document.hidden) flushComment(true); });
  document.body.dataset.pending = "0";
  document.body.dataset.ready = "1";
}

main();
