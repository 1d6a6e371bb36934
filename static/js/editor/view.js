// The viewport: image pixels <-> screen (CSS) pixels. screen = image * scale + offset.
// One transform for the image element and the box canvas, so boxes stay exact at every zoom.

export const MIN_SCALE = 0.02;
export const MAX_SCALE = 32;

export class View {
  constructor(imageWidth, imageHeight) {
    this.iw = imageWidth;
    this.ih = imageHeight;
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.sw = 1; // stage size in CSS pixels
    this.sh = 1;
  }

  resize(width, height) { this.sw = Math.max(1, width); this.sh = Math.max(1, height); }

  toImage(sx, sy) { return { x: (sx - this.tx) / this.scale, y: (sy - this.ty) / this.scale }; }
  toScreen(x, y) { return { x: x * this.scale + this.tx, y: y * this.scale + this.ty }; }

  /** The whole photo in the stage, centred. */
  fit() {
    const margin = 8;
    this.scale = Math.min((this.sw - 2 * margin) / this.iw, (this.sh - 2 * margin) / this.ih);
    this.scale = Math.max(MIN_SCALE, Math.min(MAX_SCALE, this.scale));
    this.tx = (this.sw - this.iw * this.scale) / 2;
    this.ty = (this.sh - this.ih * this.scale) / 2;
  }

  /** Zoom by `factor` keeping the image point under (sx, sy) where it is. */
  zoomAt(sx, sy, factor) { this.zoomTo(sx, sy, this.scale * factor); }

  zoomTo(sx, sy, scale) {
    const p = this.toImage(sx, sy);
    this.scale = Math.max(MIN_SCALE, Math.min(MAX_SCALE, scale));
    this.tx = sx - p.x * this.scale;
    this.ty = sy - p.y * this.scale;
  }

  /** 1:1 (one image pixel per CSS pixel) around the stage centre. */
  actualSize() { this.zoomTo(this.sw / 2, this.sh / 2, 1); }

  pan(dx, dy) { this.tx += dx; this.ty += dy; }

  /** Keep (x, y) of the image in view (after a nudge past the edge). */
  reveal(box) {
    const a = this.toScreen(box.xmin, box.ymin);
    const b = this.toScreen(box.xmax, box.ymax);
    if (b.x < 0 || a.x > this.sw) this.tx += this.sw / 2 - (a.x + b.x) / 2;
    if (b.y < 0 || a.y > this.sh) this.ty += this.sh / 2 - (a.y + b.y) / 2;
  }

  get cssTransform() { return `matrix(${this.scale},0,0,${this.scale},${this.tx},${this.ty})`; }
}
