// The photo page's box editor: wires the state, the view, the renderer, the
// keyboard map, the API client and the drafts to the page. The only module
// with DOM and global state; the others are reusable by the review pages.
import { call, getState, saveBoxes, setVerdict } from "../api.js";
import { clearDraft, loadDraft, saveDraft } from "./drafts.js";
import { boxAt, fromCorners, handleAt, isUsable, moved, resized } from "./geometry.js";
import { shortcutsDialog } from "../shortcuts.js";
import { KEYMAP, commandFor } from "./keys.js";
import { HANDLE_SIZE, Renderer } from "./render.js";
import { EditorState } from "./state.js";
import { View } from "./view.js";

performance.mark("editor-start");
const data = JSON.parse(document.getElementById("editor-data").textContent);
const root = document.getElementById("editor");
const stage = root.querySelector(".stage");
const img = stage.querySelector("img");
const canvas = stage.querySelector("canvas");
const $ = (sel) => document.querySelector(sel);
const statusLine = $("#editor-status");
const notice = $("#editor-notice");
const boxTable = $("#box-rows");
const slider = $("#score-threshold");
const panel = root.querySelector(".panel");
const photo = data.photo;
const csrf = data.csrf;
const canLabel = data.can_label;
// Accepting, editing or rejecting the model's boxes is a review (the server checks it too).
const canReview = data.can_review;
const NO_REVIEW = "Reviewing the model's suggestions on this photo is for a supervisor or the inspector who uploaded it.";

const state = new EditorState(data.state);
const view = new View(photo.width, photo.height);
const renderer = new Renderer(canvas, view);

let tool = "select";      // "select" | "draw"
let gesture = null;       // the pointer gesture in progress
let hover = null;         // key of the box under the pointer (or the hovered row)
let theirs = null;        // a colleague's boxes while a conflict is shown
let saving = false;
let spaceDown = false;
let spacePanned = false;
let verdictByPerson = data.verdict_by_person;
let autosaveTimer = null;
const pointers = new Map();

// --- drawing -----------------------------------------------------------------

let frame = 0;
let movedAt = -Infinity; // labels and halos wait until the view stops: boxes stay exact, frames stay short
let settle = 0;
let shownScale = NaN;
function render() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    img.style.transform = view.cssTransform;
    renderer.draw({
      boxes: state.boxes, threshold: Number(slider.value), selected: state.selected, hover,
      drawing: gesture && gesture.type === "draw" ? gesture.box : null, theirs,
      quick: performance.now() - movedAt < 150,
      active: gesture && ((gesture.type === "move" && gesture.started) || gesture.type === "resize") ? gesture.box.key : null,
    });
    if (view.scale !== shownScale) {
      shownScale = view.scale;
      img.classList.toggle("pixelated", view.scale >= 2);
      $("#zoom-level").textContent = `${Math.round(view.scale * 100)} %`;
    }
  });
}

/** The view moved (wheel, pinch, pan): quick frames now, a full one once it rests. */
function viewMoved() {
  movedAt = performance.now();
  clearTimeout(settle);
  settle = setTimeout(render, 160);
  render();
}

// The stage fills the window below the toolbar (the panel beside it scrolls on its own).
function fitStage() {
  if (window.innerWidth <= 1000) { stage.style.height = ""; panel.style.height = ""; return; }
  const top = stage.getBoundingClientRect().top + window.scrollY;
  const h = `${Math.max(360, window.innerHeight - top - 10)}px`;
  stage.style.height = h;
  panel.style.height = h;
}

function layout() {
  fitStage();
  const r = stage.getBoundingClientRect();
  view.resize(r.width, r.height);
  renderer.resize(r.width, r.height);
  render();
}

function status(text, kind = "") {
  statusLine.textContent = text;
  statusLine.className = `status ${kind}`;
}

function showSaveState() {
  const save = $("#btn-save");
  save.disabled = !canLabel || saving || !state.dirty;
  root.dataset.dirty = state.dirty ? "true" : "false";
  root.dataset.version = String(state.version);
  $("#photo-version").textContent = `version ${state.version}`;
  if (state.dirty && !saving) status("Unsaved changes (kept in this browser)", "warn");
}

// --- the box list ------------------------------------------------------------

const rows = new Map();
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };
const esc = (text) => String(text).replace(/[&<>"]/g, (c) => ESCAPES[c]);
const REVIEW_BUTTONS =
  '<button type="button" class="mini ok" data-act="accept" title="Accept (Enter)" aria-label="Accept">✓</button>' +
  '<button type="button" class="mini bad" data-act="reject" title="Reject (X)" aria-label="Reject">✕</button>';

// One HTML string for the whole list: a thousand rows in a few milliseconds.
function rowHtml(b) {
  // The model's score (a dashed yellow edge: a suggestion; cyan: an annotation, ✓ if it was the model's).
  const score = b.score == null ? "" : b.score.toFixed(2);
  const kind = b.state === "suggested" ? score : b.source === "model" ? `✓ ${score}` : "";
  const cls = `${b.source} ${b.state}${b.key === state.selected ? " selected" : ""}`;
  return `<tr data-key="${b.key}" class="${cls}"><td>${esc(b.label)}</td>` +
    `<td class="coords">${b.xmin}, ${b.ymin}, ${b.xmax}, ${b.ymax}</td><td class="kind">${kind}</td>` +
    `<td class="acts">${b.state === "suggested" && canReview ? REVIEW_BUTTONS : ""}</td></tr>`;
}

// The list draws only the rows in sight (plus a margin): a thousand boxes cost
// no more layout than forty. Rows have one fixed height (app.css).
const boxList = root.querySelector(".box-list");
const ROW_MARGIN = 15;
let shown = [];
let rowHeight = 30;

function renderList() {
  const threshold = Number(slider.value);
  shown = state.boxes.filter((b) => b.state === "accepted" || (b.state === "suggested" && (b.score ?? 1) >= threshold));
  paintRows();
  const open = state.suggestions();
  const hidden = open.filter((b) => (b.score ?? 1) < threshold).length;
  const n = state.annotations().length;
  $("#box-count").textContent = `${n} box${n === 1 ? "" : "es"}`;
  $("#suggestion-count").textContent = open.length
    ? `${open.length} open${hidden ? `, ${hidden} below ${threshold.toFixed(2)} hidden` : ""}`
    : "none open";
  $("#empty-boxes").hidden = shown.length > 0;
}

function headHeight() { return boxList.querySelector("thead")?.offsetHeight || 0; }

function paintRows() {
  const top = Math.max(0, boxList.scrollTop - headHeight());
  const height = boxList.clientHeight || 400;
  const first = Math.max(0, Math.floor(top / rowHeight) - ROW_MARGIN);
  const last = Math.min(shown.length, Math.ceil((top + height) / rowHeight) + ROW_MARGIN);
  const spacer = (rowsOut) => (rowsOut ? `<tr class="spacer" aria-hidden="true" style="height:${rowsOut * rowHeight}px"></tr>` : "");
  boxTable.innerHTML = spacer(first) + shown.slice(first, last).map(rowHtml).join("") + spacer(shown.length - last);
  rows.clear();
  for (const tr of boxTable.querySelectorAll("tr[data-key]")) rows.set(Number(tr.dataset.key), tr);
  markRows();
  // The real row height (fonts, zoom): measured once, then the spacers use it.
  const sample = rows.values().next().value;
  const measured = sample ? sample.getBoundingClientRect().height : 0;
  if (measured && Math.abs(measured - rowHeight) > 0.5) {
    rowHeight = measured;
    paintRows();
  }
}

let scrollFrame = 0;
boxList.addEventListener("scroll", () => {
  if (!scrollFrame) scrollFrame = requestAnimationFrame(() => { scrollFrame = 0; paintRows(); });
});

function markRows() {
  for (const [key, tr] of rows) {
    tr.classList.toggle("selected", key === state.selected);
    tr.classList.toggle("hover", key === hover);
  }
}

function setHover(key) {
  if (hover === key) return;
  const old = rows.get(hover);
  if (old) old.classList.remove("hover");
  hover = key;
  const now = rows.get(key);
  if (now) now.classList.add("hover");
  render();
}

boxTable.addEventListener("pointerover", (e) => {
  const tr = e.target.closest("tr[data-key]");
  if (tr) setHover(Number(tr.dataset.key));
});
boxTable.addEventListener("pointerleave", () => setHover(null));
boxTable.addEventListener("click", (e) => {
  const tr = e.target.closest("tr[data-key]");
  if (!tr) return;
  const key = Number(tr.dataset.key);
  state.select(key);
  const act = e.target.closest("button[data-act]")?.dataset.act;
  if (act === "accept") accept();
  else if (act === "reject") reject();
  else { view.reveal(state.byKey(key)); render(); }
});

// --- state events ------------------------------------------------------------

state.on((reason) => {
  if (reason === "select") { markRows(); render(); updateSelectionTools(); return; }
  if (reason === "live") { render(); return; }
  if (reason === "verdict") { showVerdict(); showSaveState(); return; }
  renderList();
  render();
  showSaveState();
  showVerdict();
  updateSelectionTools();
  if (reason === "change") keepDraft();
});

function updateSelectionTools() {
  const b = state.selectedBox;
  $("#btn-delete").disabled = !canLabel || !b;
  $("#btn-duplicate").disabled = !canLabel || !b || b.state !== "accepted";
  $("#btn-undo").disabled = !canLabel || !state.undoStack.length;
  $("#btn-redo").disabled = !canLabel || !state.redoStack.length;
  if (b) keepInView(b.key);
}

// Scroll the box list (never the page) so the selected box's row shows.
function keepInView(key) {
  const i = shown.findIndex((b) => b.key === key);
  if (i < 0) return;
  const head = headHeight();
  const top = head + i * rowHeight;
  if (top - head < boxList.scrollTop) boxList.scrollTop = top - head;
  else if (top + rowHeight > boxList.scrollTop + boxList.clientHeight) {
    boxList.scrollTop = top + rowHeight - boxList.clientHeight;
  } else return;
  paintRows();
}

function keepDraft() {
  if (!canLabel) return;
  if (state.dirty) saveDraft(photo.id, state.draft());
  else clearDraft(photo.id);
  scheduleAutosave();
}

// --- editing commands ----------------------------------------------------------

function editable() {
  if (!canLabel) { status("You can look at this photo; editing needs the inspector role.", "warn"); return false; }
  if (saving) return false;
  if (theirs) { status("Resolve the conflict first: use theirs, or keep yours.", "warn"); return false; }
  return true;
}

function setTool(name) {
  tool = name;
  root.dataset.tool = name;
  $("#btn-draw").setAttribute("aria-pressed", String(name === "draw"));
  $("#btn-select").setAttribute("aria-pressed", String(name === "select"));
  stage.style.cursor = name === "draw" ? "crosshair" : "";
}

function reviewable(b) {
  if (b.source !== "model" || canReview) return true;
  status(NO_REVIEW, "warn");
  return false;
}

function remove() {
  const b = state.selectedBox;
  if (!b || !editable() || !reviewable(b)) return;
  state.remove(b.key);
  status(b.source === "model" ? "Suggestion rejected" : "Box deleted");
}

function duplicate() {
  const b = state.selectedBox;
  if (!b || !editable()) return;
  const off = Math.max(4, Math.round(10 / view.scale));
  state.addBox(moved(b, off, off, photo.width, photo.height), b.label);
}

function nudge(e) {
  const b = state.selectedBox;
  if (!b || !editable() || !reviewable(b)) return;
  const step = e.shiftKey ? 10 : 1;
  const d = { arrowleft: [-step, 0], arrowright: [step, 0], arrowup: [0, -step], arrowdown: [0, step] }[e.key.toLowerCase()];
  state.change(() => {
    state.correct(b); // a nudged suggestion is a person's box now
    Object.assign(b, moved(b, d[0], d[1], photo.width, photo.height));
  });
  view.reveal(b);
}

function visibleSuggestions() {
  const t = Number(slider.value);
  return state.suggestions().filter((b) => (b.score ?? 1) >= t).sort((a, b) => (b.score ?? 0) - (a.score ?? 0));
}

function accept() {
  if (!editable()) return;
  if (!canReview) { status(NO_REVIEW, "warn"); return; }
  const b = state.selectedBox;
  if (!b || b.state !== "suggested") {
    const best = visibleSuggestions()[0];
    if (best) { state.select(best.key); status(`Suggestion ${best.score.toFixed(2)} selected: Enter accepts, X rejects`); }
    else status("No open suggestion above the slider");
    return;
  }
  state.setState([b.key], "accepted");
  status("Suggestion accepted");
  const next = visibleSuggestions()[0];
  state.select(next ? next.key : b.key);
}

function acceptAbove() {
  if (!editable()) return;
  if (!canReview) { status(NO_REVIEW, "warn"); return; }
  const keys = visibleSuggestions().map((b) => b.key);
  if (!keys.length) { status("No open suggestion above the slider"); return; }
  state.setState(keys, "accepted");
  status(`${keys.length} suggestion${keys.length === 1 ? "" : "s"} accepted`);
}

function reject() {
  if (!editable()) return;
  if (!canReview) { status(NO_REVIEW, "warn"); return; }
  const b = state.selectedBox;
  if (!b || b.state !== "suggested") { status("Select a suggestion to reject (click it, or Enter picks the best)"); return; }
  state.setState([b.key], "rejected");
  status("Suggestion rejected");
  const next = visibleSuggestions()[0];
  state.select(next ? next.key : null);
}

function cycle(back) {
  const list = state.boxes.filter((b) => b.state === "accepted" || b.state === "suggested");
  if (!list.length) return;
  const i = list.findIndex((b) => b.key === state.selected);
  const next = list[(i + (back ? list.length - 1 : 1) + (i < 0 && back ? 1 : 0)) % list.length];
  state.select(next.key);
  view.reveal(next);
  render();
}

function toggleVerified() {
  if (!editable()) return;
  state.setVerified(!state.doc.verified);
  status(state.doc.verified ? "Marked verified (save to keep it)" : "Marked not verified (save to keep it)");
}

function showVerdict() {
  const shown = state.verdict === "unknown" ? (verdictByPerson ? "unsure" : "unknown") : state.verdict;
  for (const btn of root.querySelectorAll("[data-verdict]")) {
    btn.setAttribute("aria-pressed", String(btn.dataset.verdict === shown));
  }
  const verified = $("#verified");
  verified.checked = state.doc.verified;
  root.dataset.verdict = shown;
}

// --- saving, verdicts, conflicts ------------------------------------------------------

async function save() {
  if (!canLabel || saving) return false;
  if (theirs) { status("Resolve the conflict first: use theirs, or keep yours.", "warn"); return false; }
  if (!state.dirty) { status("Nothing to save: all changes are saved", "ok"); return true; }
  saving = true;
  showSaveState();
  status("Saving…");
  const result = await saveBoxes(data.urls.boxes, { version: state.version, body: state.saveBody(), csrf });
  saving = false;
  if (result.ok) {
    state.acceptServer(result.body);
    clearDraft(photo.id);
    // The server may have set the verdict too: a rust box makes it rust unless a person chose it.
    status(`Saved · version ${result.body.version}${result.body.verdict === "rust" && !verdictByPerson ? " · verdict rust (from the boxes)" : ""}`, "ok");
    return true;
  }
  showSaveState();
  if (result.status === 412 && result.body && result.body.current) { showConflict(result.body.current); return false; }
  if (result.body && Number.isInteger(result.body.index)) {
    const b = state.annotations()[result.body.index];
    if (b) state.select(b.key);
  }
  status(`Not saved: ${result.message}`, "bad");
  return false;
}

async function verdict(value) {
  if (!editable()) return;
  const apiValue = value === "unsure" ? "unknown" : value;
  const result = await setVerdict(data.urls.verdict, { version: state.version, verdict: apiValue, csrf });
  if (result.ok) {
    verdictByPerson = true;
    if (state.dirty) state.rebase(result.body); else state.acceptServer(result.body);
    const words = { rust: "rust", norust: "no rust", unsure: "unsure" }[value];
    status(`Verdict: ${words} · version ${result.body.version}`, "ok");
    showVerdict();
    return;
  }
  if (result.status === 412 && result.body && result.body.current) { showConflict(result.body.current); return; }
  status(`Verdict not set: ${result.message}`, "bad");
}

function showConflict(current) {
  theirs = current.boxes.map((b) => state.fromServer(b));
  const n = current.boxes.filter((b) => b.state === "accepted").length;
  notice.hidden = false;
  notice.className = "notice conflict";
  notice.innerHTML = "";
  const p = document.createElement("p");
  p.innerHTML = `<strong>Someone else saved this photo</strong> (now version ${current.version}, ${n} box${n === 1 ? "" : "es"}, verdict ${current.verdict}) while you edited version ${state.version}. ` +
    "Their boxes are drawn <span class=\"swatch theirs\">magenta, dotted</span> beside yours (<span class=\"swatch mine\">cyan</span>). Nothing was overwritten; your edit is kept in this browser.";
  const useTheirs = button("Use theirs (reload)", "secondary", () => {
    theirs = null;
    notice.hidden = true;
    state.load(current);
    clearDraft(photo.id);
    status(`Reloaded version ${current.version}; your edit was discarded`, "ok");
  });
  const keepMine = button("Keep mine (save over theirs)", "", async () => {
    theirs = null;
    notice.hidden = true;
    state.version = current.version;
    state.verdict = current.verdict;
    await save();
  });
  useTheirs.id = "conflict-use-theirs";
  keepMine.id = "conflict-keep-mine";
  notice.append(p, useTheirs, keepMine);
  root.dataset.conflict = "true";
  status("Not saved: a colleague saved first. Choose above the photo.", "bad");
  layout();
}

function button(text, cls, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (cls) b.className = cls;
  b.addEventListener("click", () => { delete root.dataset.conflict; onClick(); layout(); });
  return b;
}

function offerDraft() {
  const draft = loadDraft(photo.id);
  if (!draft || !canLabel) return;
  const probe = new EditorState({ version: draft.version, verdict: state.verdict, verified: draft.doc.verified, boxes: [] });
  probe.doc = draft.doc;
  if (draft.version === state.version && JSON.stringify(probe.saveBody()) === JSON.stringify(state.saveBody())) {
    clearDraft(photo.id);
    return;
  }
  const when = new Date(draft.at).toLocaleString();
  const n = draft.doc.boxes.filter((b) => b.state === "accepted").length;
  notice.hidden = false;
  notice.className = "notice draft";
  notice.innerHTML = "";
  const p = document.createElement("p");
  p.textContent = `You have unsaved changes to this photo from ${when} (${n} box${n === 1 ? "" : "es"}, edited from version ${draft.version}` +
    (draft.version !== state.version ? `; it is now at version ${state.version}, so saving will show both` : "") + ").";
  const restore = button("Restore my changes", "", () => {
    notice.hidden = true;
    state.restore(draft);
    status("Your unsaved changes are back: save them with Ctrl+S", "warn");
  });
  restore.id = "draft-restore";
  const discard = button("Discard them", "secondary", () => {
    notice.hidden = true;
    clearDraft(photo.id);
    status("Draft discarded");
  });
  discard.id = "draft-discard";
  notice.append(p, restore, discard);
  layout();
}

function scheduleAutosave() {
  clearTimeout(autosaveTimer);
  if (!$("#autosave").checked || !state.dirty) return;
  autosaveTimer = setTimeout(() => { if (state.dirty && !gesture) save(); }, 1500);
}

// --- navigation ---------------------------------------------------------------

async function go(url, what) {
  if (!url) { status(`There is no ${what} in this list`, "warn"); return; }
  if (state.dirty && !(await save())) return;
  window.location.assign(url);
}

// The queue answers {photo, detail, ...} (GET next, POST skip): go to its photo, or say why not.
function followQueue(result) {
  if (!result.ok) { status(`No photo from the queue: ${result.message}`, "warn"); return; }
  const b = result.body || {};
  if (!b.photo) { status(b.detail || "The queue is empty: every photo is labelled.", "ok"); return; }
  window.location.assign(`/photos/${b.photo.id}/${data.nav.query ? `?${data.nav.query}` : ""}`);
}

async function queueNext() {
  if (state.dirty && !(await save())) return;
  status("Asking the queue…");
  followQueue(await call(data.urls.queue_next));
}

// Skip gives the photo back (others get it; not offered to me again for a while).
// Unsaved edits are not thrown away by a skip: save or undo them first.
async function queueSkip() {
  if (!data.from_queue) { status("Skip is for a photo the queue gave you: Q takes one.", "warn"); return; }
  if (state.dirty) { status("Unsaved changes: save them (Ctrl+S) or undo them before skipping.", "warn"); return; }
  status("Skipping…");
  followQueue(await call(data.urls.queue_skip, { method: "POST", csrf }));
}

// --- pointer gestures -----------------------------------------------------------

function local(e) {
  const r = stage.getBoundingClientRect();
  return { x: e.clientX - r.left, y: e.clientY - r.top };
}

function startPinch() {
  const [a, b] = [...pointers.values()];
  if (gesture && gesture.type !== "pan") finishGesture(true);
  gesture = { type: "pinch", dist: Math.hypot(a.x - b.x, a.y - b.y), mid: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 } };
}

stage.addEventListener("pointerdown", (e) => {
  stage.focus({ preventScroll: true });
  const p = local(e);
  pointers.set(e.pointerId, p);
  stage.setPointerCapture(e.pointerId);
  if (pointers.size === 2) { startPinch(); return; }
  if (pointers.size > 2) return;
  const at = view.toImage(p.x, p.y);
  if (e.button === 1 || spaceDown || (e.button === 2)) {
    if (spaceDown) spacePanned = true;
    gesture = { type: "pan", last: p };
    e.preventDefault();
    return;
  }
  if (e.button !== 0) return;
  if (tool === "draw" && canLabel && !theirs && !saving) {
    gesture = { type: "draw", x0: at.x, y0: at.y, box: fromCorners(at.x, at.y, at.x, at.y, photo.width, photo.height) };
    return;
  }
  const radius = (HANDLE_SIZE + 3) / view.scale;
  const sel = state.selectedBox;
  if (sel && sel.state === "accepted" && canLabel && !theirs && (sel.source !== "model" || canReview)) {
    const h = handleAt(sel, at.x, at.y, radius);
    if (h) { state.begin(); gesture = { type: "resize", box: sel, handle: h }; return; }
  }
  const hit = boxAt(visibleBoxes(), at.x, at.y, 3 / view.scale);
  if (hit) {
    state.select(hit.key);
    if (canLabel && !theirs && !saving && (hit.source !== "model" || canReview)) {
      gesture = { type: "move", box: hit, start: at, orig: { ...hit }, started: false };
      return;
    }
  } else {
    state.select(null);
  }
  gesture = { type: "pan", last: p };
});

function visibleBoxes() {
  const t = Number(slider.value);
  return state.boxes.filter((b) => b.state === "accepted" || (b.state === "suggested" && (b.score ?? 1) >= t));
}

stage.addEventListener("pointermove", (e) => {
  const p = local(e);
  if (pointers.has(e.pointerId)) pointers.set(e.pointerId, p);
  if (!gesture) { hoverAt(p); return; }
  const at = view.toImage(p.x, p.y);
  switch (gesture.type) {
    case "pinch": {
      if (pointers.size < 2) return;
      const [a, b] = [...pointers.values()];
      const dist = Math.hypot(a.x - b.x, a.y - b.y);
      const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      view.pan(mid.x - gesture.mid.x, mid.y - gesture.mid.y);
      if (gesture.dist > 0) view.zoomAt(mid.x, mid.y, dist / gesture.dist);
      gesture.dist = dist;
      gesture.mid = mid;
      viewMoved();
      return;
    }
    case "pan":
      view.pan(p.x - gesture.last.x, p.y - gesture.last.y);
      gesture.last = p;
      viewMoved();
      return;
    case "draw":
      gesture.box = fromCorners(gesture.x0, gesture.y0, at.x, at.y, photo.width, photo.height);
      render();
      return;
    case "move": {
      const dx = at.x - gesture.start.x;
      const dy = at.y - gesture.start.y;
      if (!gesture.started) {
        if (Math.hypot(dx, dy) * view.scale < 3) return;
        state.begin();
        gesture.started = true;
        state.correct(gesture.box); // a dragged suggestion is a person's box now
      }
      Object.assign(gesture.box, moved(gesture.orig, dx, dy, photo.width, photo.height));
      state.touch();
      return;
    }
    case "resize":
      Object.assign(gesture.box, resized(gesture.box, gesture.handle, at.x, at.y, photo.width, photo.height));
      // After crossing edges the dragged handle flips: keep dragging the edge under the pointer.
      if (gesture.handle.x) gesture.handle = { ...gesture.handle, x: Math.abs(gesture.box.xmin - at.x) < Math.abs(gesture.box.xmax - at.x) ? "xmin" : "xmax" };
      if (gesture.handle.y) gesture.handle = { ...gesture.handle, y: Math.abs(gesture.box.ymin - at.y) < Math.abs(gesture.box.ymax - at.y) ? "ymin" : "ymax" };
      state.touch();
      return;
    default:
  }
});

function hoverAt(p) {
  const at = view.toImage(p.x, p.y);
  const hit = boxAt(visibleBoxes(), at.x, at.y, 3 / view.scale);
  setHover(hit ? hit.key : null);
  if (tool === "draw" || !canLabel) return;
  const sel = state.selectedBox;
  const h = sel && sel.state === "accepted" ? handleAt(sel, at.x, at.y, (HANDLE_SIZE + 3) / view.scale) : null;
  stage.style.cursor = h ? `${h.name}-resize` : hit ? "move" : spaceDown ? "grab" : "";
}

function finishGesture(cancelled = false) {
  const g = gesture;
  gesture = null;
  if (!g) return;
  if (g.type === "draw") {
    if (!cancelled && isUsable(g.box)) {
      state.addBox(g.box, $("#label").value);
      setTool("select"); // as in labelImg: one box per W
      status("Box drawn · W draws another, Ctrl+S saves");
    }
    render();
  } else if (g.type === "move" || g.type === "resize") {
    if (g.type === "resize" || g.started) state.end();
  }
}

function pointerEnd(e) {
  pointers.delete(e.pointerId);
  if (gesture && gesture.type === "pinch") {
    if (pointers.size < 2) gesture = null;
    return;
  }
  finishGesture(e.type === "pointercancel");
}
stage.addEventListener("pointerup", pointerEnd);
stage.addEventListener("pointercancel", pointerEnd);
stage.addEventListener("pointerleave", () => { if (!gesture) setHover(null); });
stage.addEventListener("contextmenu", (e) => e.preventDefault());
stage.addEventListener("auxclick", (e) => e.preventDefault());

// A fast wheel sends several steps a frame: each moves the view, one frame draws them all.
stage.addEventListener("wheel", (e) => {
  e.preventDefault();
  const p = local(e);
  const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
  view.zoomAt(p.x, p.y, Math.exp(-delta * 0.0015));
  viewMoved();
}, { passive: false });

// --- keyboard -------------------------------------------------------------------------

// Keys typed into a field are the field's. A checkbox or the score slider keeps only
// what it uses (Space toggles a checkbox, arrows move the slider): the rest stay shortcuts.
function typing(target, e) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  if (target.tagName !== "INPUT") return false;
  if (target.type === "checkbox") return e.key === " ";
  if (target.type === "range") return e.key.startsWith("Arrow") || e.key === "Home" || e.key === "End";
  return true;
}

const COMMANDS = {
  draw: () => { if (editable()) { setTool("draw"); status("Draw: drag over the rust; Esc stops"); } },
  cancel: () => { finishGesture(true); setTool("select"); state.select(null); if (helpDialog.open) helpDialog.close(); },
  delete: remove,
  duplicate,
  nudge,
  undo: () => { if (editable()) { state.undo(); status("Undone"); } },
  redo: () => { if (editable()) { state.redo(); status("Redone"); } },
  save,
  prev: () => go(data.nav.prev, "previous photo"),
  next: () => go(data.nav.next, "next photo"),
  nextUnlabelled: () => go(data.nav.next_unlabelled, "unlabelled photo after this one"),
  queueNext,
  queueSkip,
  verified: toggleVerified,
  verdictRust: () => verdict("rust"),
  verdictNoRust: () => verdict("norust"),
  verdictUnsure: () => verdict("unsure"),
  accept,
  acceptAbove,
  reject,
  cycle: (e) => cycle(e.shiftKey),
  zoomIn: () => { view.zoomAt(view.sw / 2, view.sh / 2, 1.25); render(); },
  zoomOut: () => { view.zoomAt(view.sw / 2, view.sh / 2, 0.8); render(); },
  fit: () => { view.fit(); render(); },
  actualSize: () => { view.actualSize(); render(); },
  help: () => toggleHelp(),
};

document.addEventListener("keydown", (e) => {
  if (typing(e.target, e) && e.key !== "Escape") return;
  const command = commandFor(e);
  if (!command) return;
  // A focused button or link keeps its own Enter/Space; Tab moves focus outside the stage.
  const onControl = e.target instanceof HTMLElement && e.target.closest("button, a, summary") && e.target !== stage;
  if (onControl && (e.key === "Enter" || e.key === " ")) return;
  if (command === "cycle" && e.target !== stage) return;
  if (command === "verified") {
    e.preventDefault();
    if (!e.repeat) { spaceDown = true; spacePanned = false; }
    return; // toggled on key up, unless the space was used to pan
  }
  if (helpDialog.open && command !== "help" && command !== "cancel") return;
  e.preventDefault();
  COMMANDS[command](e);
});

document.addEventListener("keyup", (e) => {
  if (e.key !== " " || !spaceDown) return;
  spaceDown = false;
  if (!spacePanned && !typing(e.target, e)) COMMANDS.verified();
});

// --- toolbar and panel ----------------------------------------------------------

const clicks = {
  "btn-select": () => COMMANDS.cancel(),
  "btn-draw": COMMANDS.draw,
  "btn-delete": remove,
  "btn-duplicate": duplicate,
  "btn-undo": COMMANDS.undo,
  "btn-redo": COMMANDS.redo,
  "btn-zoom-in": COMMANDS.zoomIn,
  "btn-zoom-out": COMMANDS.zoomOut,
  "btn-fit": COMMANDS.fit,
  "btn-actual": COMMANDS.actualSize,
  "btn-save": save,
  "btn-prev": COMMANDS.prev,
  "btn-next": COMMANDS.next,
  "btn-next-unlabelled": COMMANDS.nextUnlabelled,
  "btn-queue": queueNext,
  "btn-skip": queueSkip,
  "btn-accept-above": acceptAbove,
  "btn-help": COMMANDS.help,
};
for (const [id, fn] of Object.entries(clicks)) {
  const el = root.querySelector(`#${id}`);
  if (!el) continue;
  el.addEventListener("mousedown", (e) => e.preventDefault()); // keep the keys on the stage
  el.addEventListener("click", () => fn());
}
for (const btn of root.querySelectorAll("[data-verdict]")) {
  btn.addEventListener("mousedown", (e) => e.preventDefault());
  btn.addEventListener("click", () => verdict(btn.dataset.verdict));
}
$("#verified").addEventListener("change", (e) => {
  if (e.target.checked !== state.doc.verified) toggleVerified();
});
slider.addEventListener("input", () => {
  $("#score-value").textContent = Number(slider.value).toFixed(2);
  renderList();
  render();
});
$("#autosave").checked = localStorage.getItem("rustwatch:autosave") === "on";
$("#autosave").addEventListener("change", (e) => {
  localStorage.setItem("rustwatch:autosave", e.target.checked ? "on" : "off");
  scheduleAutosave();
});
$("#label").addEventListener("change", (e) => {
  const b = state.selectedBox;
  if (b && b.state === "accepted" && editable()) state.change(() => { b.label = e.target.value; });
});

const { dialog: helpDialog, toggle: toggleHelp } = shortcutsDialog(KEYMAP);

window.addEventListener("beforeunload", (e) => {
  if (!state.dirty) return;
  saveDraft(photo.id, state.draft());
  e.preventDefault();
  e.returnValue = "";
});
window.addEventListener("resize", layout);
new ResizeObserver(layout).observe(stage);

// --- start -------------------------------------------------------------------

// The page asked for the photo already (its src is in the HTML): it may have arrived.
function imageReady() { root.dataset.imageReady = "true"; performance.mark("editor-image"); }
img.style.width = `${photo.width}px`;
img.style.height = `${photo.height}px`;
if (img.complete && img.naturalWidth) imageReady();
else img.addEventListener("load", imageReady, { once: true });
setTool("select");
layout();
view.fit();
renderList();
showSaveState();
showVerdict();
updateSelectionTools();
offerDraft();
status(canLabel ? "Ready · W draws a box, ? lists the keys" : "Read-only: editing needs the inspector role.");
render();
// Usable: the boxes are on the canvas (drawn in this frame) and every handler is attached.
requestAnimationFrame(() => {
  root.dataset.ready = "true";
  performance.mark("editor-ready");
});

// For the browser tests and the benchmark: the live state, read-only by convention.
window.rustwatchEditor = { state, view, renderer, render, getState: () => getState(data.urls.boxes) };
