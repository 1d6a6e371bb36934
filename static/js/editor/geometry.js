// Box geometry in original-image pixels (VOC xmin, ymin, xmax, ymax; integers).
// Pure functions: no DOM, no state, so the review pages can reuse them.

export const MIN_SIZE = 2; // a box smaller than this is a slip of the hand, not a box

/** Corners of a drag from (x0, y0) to (x1, y1), ordered, rounded and kept in the image. */
export function fromCorners(x0, y0, x1, y1, width, height) {
  const xmin = clamp(Math.round(Math.min(x0, x1)), 0, width);
  const xmax = clamp(Math.round(Math.max(x0, x1)), 0, width);
  const ymin = clamp(Math.round(Math.min(y0, y1)), 0, height);
  const ymax = clamp(Math.round(Math.max(y0, y1)), 0, height);
  return { xmin, ymin, xmax, ymax };
}

export function clamp(v, lo, hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

export function isUsable(box) {
  return box.xmax - box.xmin >= MIN_SIZE && box.ymax - box.ymin >= MIN_SIZE;
}

export function contains(box, x, y, slack = 0) {
  return x >= box.xmin - slack && x <= box.xmax + slack && y >= box.ymin - slack && y <= box.ymax + slack;
}

/** Move a box by (dx, dy) without leaving the image (its size is kept). */
export function moved(box, dx, dy, width, height) {
  const w = box.xmax - box.xmin;
  const h = box.ymax - box.ymin;
  const xmin = clamp(Math.round(box.xmin + dx), 0, width - w);
  const ymin = clamp(Math.round(box.ymin + dy), 0, height - h);
  return { xmin, ymin, xmax: xmin + w, ymax: ymin + h };
}

// The eight handles: which edges each one drags.
export const HANDLES = [
  { name: "nw", x: "xmin", y: "ymin" }, { name: "n", x: null, y: "ymin" },
  { name: "ne", x: "xmax", y: "ymin" }, { name: "e", x: "xmax", y: null },
  { name: "se", x: "xmax", y: "ymax" }, { name: "s", x: null, y: "ymax" },
  { name: "sw", x: "xmin", y: "ymax" }, { name: "w", x: "xmin", y: null },
];

/** Where a handle sits on a box, in image pixels. */
export function handlePoint(box, handle) {
  const cx = (box.xmin + box.xmax) / 2;
  const cy = (box.ymin + box.ymax) / 2;
  return { x: handle.x ? box[handle.x] : cx, y: handle.y ? box[handle.y] : cy };
}

/** The handle of `box` under (x, y) within `radius` image pixels, or null. */
export function handleAt(box, x, y, radius) {
  for (const h of HANDLES) {
    const p = handlePoint(box, h);
    if (Math.abs(p.x - x) <= radius && Math.abs(p.y - y) <= radius) return h;
  }
  return null;
}

/** A box with the handle's edges dragged to (x, y); edges may cross (then swap). */
export function resized(box, handle, x, y, width, height) {
  const c = { xmin: box.xmin, ymin: box.ymin, xmax: box.xmax, ymax: box.ymax };
  if (handle.x) c[handle.x] = x;
  if (handle.y) c[handle.y] = y;
  return fromCorners(c.xmin, c.ymin, c.xmax, c.ymax, width, height);
}

/**
 * The box under (x, y): the smallest that contains the point, so a small box
 * inside a big one can still be picked. `boxes` is any iterable.
 */
export function boxAt(boxes, x, y, slack = 0) {
  let best = null;
  let bestArea = Infinity;
  for (const b of boxes) {
    if (!contains(b, x, y, slack)) continue;
    const area = (b.xmax - b.xmin) * (b.ymax - b.ymin);
    if (area < bestArea) { best = b; bestArea = area; }
  }
  return best;
}

export function sameCoords(a, b) {
  return a.xmin === b.xmin && a.ymin === b.ymin && a.xmax === b.xmax && a.ymax === b.ymax;
}
