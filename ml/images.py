"""Fast photo decoding for the models: JPEG draft mode, square resize, views.

A drone photo is often 4000 px wide while the classifier looks at 224 px.
Pillow's JPEG draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale
directly, which is most of the cost saved; the rest is a bilinear resize.
Decoding runs in a thread pool (Pillow releases the GIL while decoding), so a
batch of photos keeps both cores busy while the network runs.

Views are the deterministic variants of a photo that the embedding cache
stores: "full" (the whole photo), "hflip", "aug<N>" (a random crop, flip
and mild colour jitter seeded by the photo's hash and N, so the same view is
the same pixels on every machine and can be cached by name), "hue<N>" (the
same crop and flip as aug<N>, with hue and saturation jitter too) and
"tile<G>_<I>" (window I of an overlapping G x G grid: rust is local, and a
region sees a small patch at a higher resolution than the whole photo).

No TensorFlow here: the web process may import this module.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, UnidentifiedImageError

# Decompression-bomb guard: far above any drone photo, far below a hostile file.
Image.MAX_IMAGE_PIXELS = 120_000_000


class ImageError(ValueError):
    """A photo that cannot be decoded; the message names the file."""


def _open(path: str | os.PathLike) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: file not found") from exc
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from exc


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from exc


def decode(path: str | os.PathLike, min_side: int | None = None) -> Image.Image:
    """Decode a photo to RGB, letting JPEG decode at reduced scale.

    With `min_side`, the decoded image keeps at least that many pixels on each
    side (draft mode only ever shrinks by powers of two down to that bound).
    Raises ImageError naming the file for anything that is not a photo.
    """
    img = _open(path)
    try:
        if min_side and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))
        # No EXIF rotation: VOC boxes are in the stored pixel grid (as labelImg
        # and the upload validator see it), so the pixels must stay in it too.
        return img.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt image data ({exc})") from exc


def view_names(n_aug: int, flip: bool = True) -> list[str]:
    """The cached view names: full photo, its mirror, then n_aug augmentations."""
    return ["full"] + (["hflip"] if flip else []) + [f"aug{i}" for i in range(n_aug)]


def tile_names(grids: Sequence[int]) -> list[str]:
    """The tile view names of G x G grids, for each G in `grids` ("tile2_0" .. "tile2_3", ...)."""
    return [f"tile{g}_{i}" for g in grids for i in range(g * g)]


_TILE_RE = re.compile(r"^tile([1-9])_(\d+)$")


def tile_box(view: str, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of tile view "tile<G>_<I>" in a width x height photo.

    The G x G windows overlap by half: each spans 2 / (G + 1) of a side, one
    every 1 / (G + 1), so rust on a window's border is whole in a neighbour.
    I counts row by row from the top left.
    """
    m = _TILE_RE.match(view)
    if not m or int(m[2]) >= int(m[1]) ** 2:
        raise ValueError(f"not a tile view: {view!r} (tile<G>_<I>, I < G * G)")
    g, i = int(m[1]), int(m[2])
    row, col = divmod(i, g)

    def span(k: int, n: int) -> tuple[int, int]:
        a = int(round(k * n / (g + 1)))
        return a, max(a + 1, int(round((k + 2) * n / (g + 1))))

    x0, x1 = span(col, width)
    y0, y1 = span(row, height)
    return x0, y0, min(x1, width), min(y1, height)


def _shift_hue(img: Image.Image, shift: float, saturation: float) -> Image.Image:
    """Rotate the hue by `shift` of a turn and scale the saturation by `saturation`."""
    hsv = np.asarray(img.convert("HSV"), dtype=np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(round(shift * 256))) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


def _rng(seed_text: str) -> np.random.Generator:
    digest = hashlib.sha256(seed_text.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def apply_view(img: Image.Image, view: str, size: int, seed: str = "") -> np.ndarray:
    """Render one named view of an RGB image as a (size, size, 3) uint8 array.

    "full" squashes the whole photo to a square (the models were trained that
    way and rust can be anywhere, so nothing is cropped away); "hflip" mirrors
    it; "aug<N>" crops 60-100 % of the area at a random place and aspect,
    maybe mirrors, and jitters brightness/contrast/saturation by up to 20 %
    (no hue: rust is recognised partly by its colour); "hue<N>" is aug<N>
    (same crop and flip) with the hue turned by up to 4 % of a turn (about
    15 degrees) and the saturation scaled by 0.6-1.4; "tile<G>_<I>" is window
    I of the G x G grid (`tile_box`).
    """
    if view == "full":
        out = img.resize((size, size), Image.BILINEAR)
    elif view == "hflip":
        out = img.resize((size, size), Image.BILINEAR).transpose(Image.FLIP_LEFT_RIGHT)
    elif view.startswith("tile"):
        out = img.crop(tile_box(view, *img.size)).resize((size, size), Image.BILINEAR)
    elif re.fullmatch(r"(aug|hue)\d+", view):
        hue = view.startswith("hue")
        rng = _rng(f"{seed}:aug{view[3:]}")  # hue<N> crops where aug<N> does
        w, h = img.size
        area = rng.uniform(0.6, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw = int(round(min(w, w * np.sqrt(area * aspect))))
        ch = int(round(min(h, h * np.sqrt(area / aspect))))
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        out = img.crop((x0, y0, x0 + max(cw, 1), y0 + max(ch, 1)))
        out = out.resize((size, size), Image.BILINEAR)
        if rng.random() < 0.5:
            out = out.transpose(Image.FLIP_LEFT_RIGHT)
        out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.8, 1.2))
        out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.8, 1.2))
        out = ImageEnhance.Color(out).enhance(rng.uniform(0.8, 1.2))
        if hue:
            out = _shift_hue(out, rng.uniform(-0.04, 0.04), rng.uniform(0.6, 1.4))
    else:
        raise ValueError(f"unknown view {view!r}")
    return np.asarray(out, dtype=np.uint8)


def load_views(
    path: str | os.PathLike, views: Sequence[str], size: int, seed: str = ""
) -> np.ndarray:
    """Decode once, render each view: (len(views), size, size, 3) uint8.

    With tile views the photo is decoded large enough for its smallest tile
    to keep `size` pixels a side (JPEG draft mode would otherwise shrink it)."""
    zoom = max([(int(m[1]) + 1) / 2 for m in map(_TILE_RE.match, views) if m] or [1])
    img = decode(path, min_side=int(math.ceil(size * zoom)))
    return np.stack([apply_view(img, v, size, seed) for v in views])


def load_square(path: str | os.PathLike, size: int) -> np.ndarray:
    """The whole photo as a (size, size, 3) uint8 array (the "full" view)."""
    return apply_view(decode(path, min_side=size), "full", size)


def iter_batches(
    items: Sequence[tuple[str | os.PathLike, str]],
    views: Sequence[str],
    size: int,
    batch_size: int = 64,
    workers: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (start index, pixels) for consecutive batches of (path, seed) items.

    Pixels have shape (n_items_in_batch, len(views), size, size, 3). The next
    batch decodes in the thread pool while the caller runs the network on the
    current one.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    starts = list(range(0, len(items), batch_size))

    def load(start: int) -> np.ndarray:
        chunk = items[start : start + batch_size]
        return np.stack(list(pool.map(lambda it: load_views(it[0], views, size, it[1]), chunk)))

    with ThreadPoolExecutor(max_workers=workers) as pool, ThreadPoolExecutor(1) as ahead:
        pending = ahead.submit(load, starts[0]) if starts else None
        for i, start in enumerate(starts):
            batch = pending.result()
            pending = ahead.submit(load, starts[i + 1]) if i + 1 < len(starts) else None
            yield start, batch


def check_images(paths: Iterable[str | os.PathLike]) -> None:
    """Fully decode each file; raise ImageError naming the first bad one."""
    for p in paths:
        decode(Path(p))
