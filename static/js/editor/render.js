// Draws the boxes on a canvas over the photo. One batched path per style, so a
// thousand boxes cost about a millisecond; boxes outside the stage are skipped.
import { HANDLES, handlePoint } from "./geometry.js";

export const STYLE = {
  human: { color: "#00e5ff", dash: [] },        // cyan: the complement of rust
  suggested: { color: "#ffe600", dash: [7, 5] }, // yellow, dashed: the model's, not yet a label
  theirs: { color: "#ff4dff", dash: [3, 4] },    // magenta: a colleague's save (conflict)
  drawing: { color: "#ffffff", dash: [5, 4] },
};
const HALO = "rgba(0,0,0,0.85)";
const FONT = "600 11px system-ui, sans-serif";
const HANDLE = 7; // CSS pixels

export class Renderer {
  constructor(canvas, view) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.view = view;
    this.dpr = 1;
  }

  resize(width, height) {
    this.dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * this.dpr);
    this.canvas.height = Math.round(height * this.dpr);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
  }

  /** Screen rect of a box, snapped to half pixels so 1-px lines are crisp. */
  rect(b) {
    const v = this.view;
    const x0 = Math.round(b.xmin * v.scale + v.tx) + 0.5;
    const y0 = Math.round(b.ymin * v.scale + v.ty) + 0.5;
    const x1 = Math.round(b.xmax * v.scale + v.tx) + 0.5;
    const y1 = Math.round(b.ymax * v.scale + v.ty) + 0.5;
    return [x0, y0, x1 - x0, y1 - y0];
  }

  visible(r) {
    return r[0] + r[2] >= -2 && r[1] + r[3] >= -2 && r[0] <= this.view.sw + 2 && r[1] <= this.view.sh + 2;
  }

  /**
   * scene: {boxes, threshold, selected, hover, drawing, theirs, active}. Boxes in
   * state "rejected", and suggestions under the threshold, are not drawn.
   * `active` is the key of the box being dragged: the others are drawn once into
   * a bitmap that each frame copies, so a drag costs one box however many there are.
   * `quick` (while the view moves: wheel, pinch, pan) leaves the labels and the dark
   * halo out, which halves what a frame rasterises; both return when the view stops.
   */
  draw(scene) {
    if (scene.active == null) {
      this.frozen = null;
      this.paint(this.ctx, scene, null);
      return;
    }
    const v = this.view;
    const key = `${scene.active}|${v.scale}|${v.tx}|${v.ty}|${v.sw}|${v.sh}|${scene.threshold}`;
    if (!this.frozen || this.frozen.key !== key) {
      const layer = this.frozen?.canvas || document.createElement("canvas");
      layer.width = this.canvas.width;
      layer.height = this.canvas.height;
      this.paint(layer.getContext("2d"), { ...scene, selected: null, hover: null, drawing: null }, scene.active);
      this.frozen = { key, canvas: layer };
    }
    const { ctx } = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.drawImage(this.frozen.canvas, 0, 0);
    const only = scene.boxes.filter((b) => b.key === scene.active);
    this.paint(ctx, { ...scene, boxes: only, theirs: null }, null, false);
  }

  paint(ctx, scene, skip, clear = true) {
    const saved = this.ctx;
    this.ctx = ctx;
    try { this.paintBoxes(scene, skip, clear); } finally { this.ctx = saved; }
  }

  paintBoxes(scene, skip, clear) {
    const { ctx } = this;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    if (clear) ctx.clearRect(0, 0, this.view.sw, this.view.sh);
    const groups = { human: [], suggested: [] };
    let selected = null;
    let hover = null;
    for (const b of scene.boxes) {
      if (b.state === "rejected" || b.key === skip) continue;
      if (b.state === "suggested" && (b.score ?? 1) < scene.threshold) continue;
      const r = this.rect(b);
      if (!this.visible(r)) continue;
      const item = { b, r };
      groups[b.state === "suggested" ? "suggested" : "human"].push(item);
      if (b.key === scene.selected) selected = item;
      if (b.key === scene.hover) hover = item;
    }
    if (scene.theirs) {
      const items = scene.theirs.filter((b) => b.state !== "rejected").map((b) => ({ b, r: this.rect(b) }));
      this.stroke(items, STYLE.theirs, 2);
      this.labels(items, STYLE.theirs, (b) => `theirs: ${b.label}`);
    }
    const halo = !scene.quick;
    this.stroke(groups.suggested, STYLE.suggested, 2, halo);
    this.stroke(groups.human, STYLE.human, 2, halo);
    if (!scene.quick) {
      this.labels(groups.suggested, STYLE.suggested, (b) => `${b.label} ${(b.score ?? 0).toFixed(2)}`);
      this.labels(groups.human, STYLE.human, (b) => (b.source === "model" ? `${b.label} ✓` : b.label));
    }
    if (hover && hover !== selected) this.highlight(hover, 3);
    if (selected) this.highlight(selected, 3, true);
    if (scene.drawing) this.stroke([{ r: this.rect(scene.drawing) }], STYLE.drawing, 1.5);
  }

  stroke(items, style, width, halo = true) {
    if (!items.length) return;
    const { ctx } = this;
    ctx.beginPath();
    for (const { r } of items) ctx.rect(r[0], r[1], r[2], r[3]);
    ctx.setLineDash([]);
    if (halo) {
      ctx.lineWidth = width + 2;
      ctx.strokeStyle = HALO;
      ctx.stroke();
    }
    ctx.setLineDash(style.dash);
    ctx.lineWidth = width;
    ctx.strokeStyle = style.color;
    ctx.stroke();
    ctx.setLineDash([]);
  }

  labels(items, style, text) {
    const { ctx } = this;
    ctx.font = FONT;
    ctx.textBaseline = "top";
    const tags = [];
    for (const { b, r } of items) {
      if (r[2] < 16 || r[3] < 10) continue; // too small to carry a tag at this zoom
      const t = text(b);
      const w = t.length * 6.2 + 6;
      const y = r[1] >= 15 ? r[1] - 15 : r[1] + 1;
      tags.push([r[0] - 0.5, y, w, t]);
    }
    if (!tags.length) return;
    ctx.beginPath();
    for (const [x, y, w] of tags) ctx.rect(x, y, w, 14);
    ctx.fillStyle = HALO;
    ctx.fill();
    ctx.fillStyle = style.color;
    for (const [x, y, , t] of tags) ctx.fillText(t, x + 3, y + 1.5);
  }

  highlight({ b, r }, width, handles = false) {
    const { ctx } = this;
    ctx.lineWidth = width + 2;
    ctx.strokeStyle = HALO;
    ctx.strokeRect(r[0], r[1], r[2], r[3]);
    ctx.lineWidth = width;
    ctx.strokeStyle = "#ffffff";
    if (b.state === "suggested") ctx.setLineDash(STYLE.suggested.dash);
    ctx.strokeRect(r[0], r[1], r[2], r[3]);
    ctx.setLineDash([]);
    if (!handles || b.state === "suggested") return;
    ctx.beginPath();
    for (const h of HANDLES) {
      const p = handlePoint(b, h);
      const s = this.view.toScreen(p.x, p.y);
      ctx.rect(Math.round(s.x - HANDLE / 2) + 0.5, Math.round(s.y - HANDLE / 2) + 0.5, HANDLE, HANDLE);
    }
    ctx.fillStyle = "#ffffff";
    ctx.fill();
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#000000";
    ctx.stroke();
  }
}

export const HANDLE_SIZE = HANDLE;
