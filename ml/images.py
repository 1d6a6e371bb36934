"""Fast photo decoding for the models: JPEG draft mode, square resize, views.

A drone photo is often 4000 px wide while the classifier looks at 224 px.
Pillow's JPEG draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale
directly, which is most of the cost saved; the rest is a bilinear resize.
Decoding runs in a thread pool (Pillow releases the GIL while decoding), so a
batch of photos keeps both cores busy while the network runs.

Views are the deterministic variants of a photo that the embedding cache
stores: "full" (the whole photo), "hflip", and "aug<N>" (a random crop, flip
and mild colour jitter seeded by the photo's hash and N, so the same view is
the same pixels on every machine and can be cached by name).

No TensorFlow here: the web process may import this module.
"""

from __future__ import annotations

import hashlib
import os
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


def _rng(seed_text: str) -> np.random.Generator:
    digest = hashlib.sha256(seed_text.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def apply_view(img: Image.Image, view: str, size: int, seed: str = "") -> np.ndarray:
    """Render one named view of an RGB image as a (size, size, 3) uint8 array.

    "full" squashes the whole photo to a square (the models were trained that
    way and rust can be anywhere, so nothing is cropped away); "hflip" mirrors
    it; "aug<N>" crops 60-100 % of the area at a random place and aspect,
    maybe mirrors, and jitters brightness/contrast/saturation by up to 20 %
    (never hue: rust is recognised partly by its colour).
    """
    if view == "full":
        out = img.resize((size, size), Image.BILINEAR)
    elif view == "hflip":
        out = img.resize((size, size), Image.BILINEAR).transpose(Image.FLIP_LEFT_RIGHT)
    elif view.startswith("aug"):
        rng = _rng(f"{seed}:{view}")
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
    else:
        raise ValueError(f"unknown view {view!r}")
    return np.asarray(out, dtype=np.uint8)


def load_views(
    path: str | os.PathLike, views: Sequence[str], size: int, seed: str = ""
) -> np.ndarray:
    """Decode once, render each view: (len(views), size, size, 3) uint8."""
    img = decode(path, min_side=size)
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
