// The review page: human and model boxes over the photo, drawn by the box
// editor's renderer (same styles, same labels), with zoom, hover between the
// list and the boxes, and keys: Tab picks the next suggestion, Enter accepts,
// X rejects, A / D go to the previous / next photo of the queue.
import { boxAt } from "../editor/geometry.js";
import { Renderer } from "../editor/render.js";
import { View } from "../editor/view.js";

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

function draw() {
  img.style.transform = view.cssTransform;
  renderer.draw({ boxes, threshold: 0, selected, hover, drawing: null, theirs: null });
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

function pointerBox(event) {
  const r = stage.getBoundingClientRect();
  const p = view.toImage(event.clientX - r.left, event.clientY - r.top);
  const hit = boxAt(boxes.filter((b) => b.state !== "rejected"), p.x, p.y, 2 / view.scale);
  return hit ? hit.key : null;
}

stage.addEventListener("pointermove", (e) => {
  const key = pointerBox(e);
  if (key !== hover) { hover = key; draw(); }
});
stage.addEventListener("pointerleave", () => { hover = null; draw(); });
stage.addEventListener("click", (e) => {
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
}

function press(action) {
  const row = rows.find((r) => Number(r.dataset.box) === selected);
  const button = row && row.querySelector(`button[value="${action}"]`);
  if (button) button.click();
}

document.addEventListener("keydown", (e) => {
  if (e.target.closest("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
  const key = e.key.toLowerCase();
  if (key === "tab" && rows.length) {
    e.preventDefault();
    const at = rows.findIndex((r) => Number(r.dataset.box) === selected);
    const next = (at + (e.shiftKey ? rows.length - 1 : 1)) % rows.length;
    selected = Number(rows[next].dataset.box);
    draw();
  } else if (key === "enter" && !e.target.closest("button, a")) {
    e.preventDefault();
    press("accept");
  } else if (key === "x") {
    press("reject");
  } else if (key === "a" || key === "d") {
    const link = document.getElementById(key === "a" ? "prev-photo" : "next-photo");
    if (link) link.click();
  } else if (key === "f" || key === "0") {
    view.fit(); draw();
  }
});

new ResizeObserver(layout).observe(stage);
if (img.complete) layout(); else img.addEventListener("load", layout);
