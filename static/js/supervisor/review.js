// The review page: human and model boxes over the photo, drawn by the box
// editor's renderer (same styles, same labels), with zoom, hover between the
// list and the boxes, and keys: Tab picks the next suggestion, Enter accepts,
// X rejects, A / D go to the previous / next photo of the queue, ? lists the keys
// (the editor's dialog, from REVIEW_KEYMAP).
// Correct: drag the selected suggestion (or a handle of its correction) and
// save; the server turns it into a person's box and the suggestion into an edit.
import { boxAt, handleAt, moved, resized } from "../editor/geometry.js";
import { Renderer } from "../editor/render.js";
import { REVIEW_KEYMAP, lookup } from "../editor/keys.js";
import { View } from "../editor/view.js";
import { shortcutsDialog } from "../shortcuts.js";

const data = JSON.parse(document.getElementById("overlay-data").textContent);
const stage = document.getElementById("review-overlay");
const img = stage.querySelector("img");
const canvas = stage.querySelector("canvas");
const rows = [...document.querySelectorAll("#suggestions li[data-box]")];

const boxes = data.boxes.map((b) => ({ ...b, key: b.id }));
const view = new View(data.photo.width, data.photo.height);
const renderer = new Renderer(canvas, view);
let hover = null;
let selected = rows.length ? Number(rows[0].dataset.box) : null;
let gesture = null; // {id, handle, start: {x, y}, from: box} while dragging a correction
const corrections = new Map(); // suggestion id -> its corrected box (drawn as a person's box)
const { width: W, height: H } = data.photo;

function scene() {
  const list = [...boxes];
  for (const [id, c] of corrections) list.push({ ...c, key: `c${id}` });
  return list;
}

function draw() {
  img.style.transform = view.cssTransform;
  const active = gesture ? `c${gesture.id}` : null;
  const sel = corrections.has(selected) ? `c${selected}` : selected;
  renderer.draw({ boxes: scene(), threshold: 0, selected: sel, hover, active, drawing: null, theirs: null });
  for (const row of rows) {
    const key = Number(row.dataset.box);
    row.classList.toggle("hover", key === hover || key === selected);
  }
  stage.dataset.drawn = String(boxes.filter((b) => b.state !== "rejected").length);
}

function layout() {
  const r = stage.getBoundingClientRect();
  view.resize(r.width, r.height);
  renderer.resize(r.width, r.height);
  view.fit();
  draw();
}

function imagePoint(event) {
  const r = stage.getBoundingClientRect();
  return view.toImage(event.clientX - r.left, event.clientY - r.top);
}

function pointerBox(event) {
  const p = imagePoint(event);
  const hit = boxAt(boxes.filter((b) => b.state !== "rejected"), p.x, p.y, 2 / view.scale);
  return hit ? hit.key : null;
}

function showCorrection(id) {
  const row = rows.find((r) => Number(r.dataset.box) === id);
  const c = corrections.get(id);
  if (!row) return;
  const form = row.querySelector("form.correct");
  form.hidden = !c;
  if (c) for (const k of ["xmin", "ymin", "xmax", "ymax"]) form.elements[k].value = c[k];
  row.querySelector(".coords").textContent = c
    ? `→ ${c.xmin},${c.ymin}–${c.xmax},${c.ymax}`
    : "";
}

stage.addEventListener("pointerdown", (e) => {
  if (e.button !== 0 || selected === null) return;
  const p = imagePoint(e);
  const base = corrections.get(selected) || boxes.find((b) => b.key === selected);
  if (!base) return;
  const handle = corrections.has(selected) ? handleAt(base, p.x, p.y, 8 / view.scale) : null;
  const inside = p.x >= base.xmin && p.x <= base.xmax && p.y >= base.ymin && p.y <= base.ymax;
  if (!handle && !inside) return;
  e.preventDefault();
  stage.setPointerCapture(e.pointerId);
  const from = { ...base, state: "accepted", source: "human" };
  if (!corrections.has(selected)) corrections.set(selected, from);
  gesture = { id: selected, handle, start: p, from };
});

stage.addEventListener("pointermove", (e) => {
  if (gesture) {
    const p = imagePoint(e);
    const { from, handle } = gesture;
    const next = handle
      ? resized(from, handle, p.x, p.y, W, H)
      : moved(from, p.x - gesture.start.x, p.y - gesture.start.y, W, H);
    corrections.set(gesture.id, { ...from, ...next });
    showCorrection(gesture.id);
    draw();
    return;
  }
  const key = pointerBox(e);
  if (key !== hover) { hover = key; draw(); }
});

stage.addEventListener("pointerup", () => {
  if (!gesture) return;
  const { id } = gesture;
  const c = corrections.get(id);
  if (["xmin", "ymin", "xmax", "ymax"].every((k) => c[k] === boxes.find((b) => b.key === id)[k])) {
    corrections.delete(id); // a click, not a correction
  }
  gesture = null;
  showCorrection(id);
  draw();
});
stage.addEventListener("pointerleave", () => { hover = null; draw(); });
stage.addEventListener("click", (e) => {
  if (gesture) return;
  const key = pointerBox(e);
  if (key !== null && rows.some((r) => Number(r.dataset.box) === key)) { selected = key; draw(); }
});
stage.addEventListener("wheel", (e) => {
  e.preventDefault();
  const r = stage.getBoundingClientRect();
  view.zoomAt(e.clientX - r.left, e.clientY - r.top, e.deltaY < 0 ? 1.15 : 1 / 1.15);
  draw();
}, { passive: false });
stage.addEventListener("dblclick", () => { view.fit(); draw(); });

for (const row of rows) {
  const key = Number(row.dataset.box);
  row.addEventListener("mouseenter", () => { hover = key; draw(); });
  row.addEventListener("mouseleave", () => { hover = null; draw(); });
  row.querySelector("button.undo-correction").addEventListener("click", () => {
    corrections.delete(key);
    showCorrection(key);
    draw();
  });
}

function press(action) {
  const row = rows.find((r) => Number(r.dataset.box) === selected);
  const corrected = action === "accept" && corrections.has(selected);
  const button = row && row.querySelector(corrected ? "form.correct button[type=submit]" : `button[value="${action}"]`);
  if (button) button.click();
}

const commandFor = lookup(REVIEW_KEYMAP);
const { dialog: help, toggle: toggleHelp } = shortcutsDialog(REVIEW_KEYMAP);

function cycle(back) {
  if (!rows.length) return;
  const at = rows.findIndex((r) => Number(r.dataset.box) === selected);
  const next = (at + (back ? rows.length - 1 : 1)) % rows.length;
  selected = Number(rows[next].dataset.box);
  draw();
}

const COMMANDS = {
  cycle: (e) => cycle(e.shiftKey),
  accept: () => press("accept"),
  reject: () => press("reject"),
  cancel: () => {
    if (!corrections.has(selected)) return;
    corrections.delete(selected);
    showCorrection(selected);
    draw();
  },
  prev: () => document.getElementById("prev-photo")?.click(),
  next: () => document.getElementById("next-photo")?.click(),
  fit: () => { view.fit(); draw(); },
  help: toggleHelp,
};

document.addEventListener("keydown", (e) => {
  if (e.target.closest("input, textarea, select")) return;
  const command = commandFor(e);
  if (!command) return;
  // A focused button or link keeps its own Enter; the open list takes only ? and Esc.
  if (command === "accept" && e.target.closest("button, a")) return;
  if (help.open && command !== "help") return;
  if (command === "cycle" && !rows.length) return;
  e.preventDefault();
  COMMANDS[command](e);
});

new ResizeObserver(layout).observe(stage);
if (img.complete) layout(); else img.addEventListener("load", layout);
document.getElementById("btn-help")?.addEventListener("click", () => toggleHelp());
