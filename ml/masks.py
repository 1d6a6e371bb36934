"""Photos with rust masks: the corrosion-vt layout, and rust / no-rust tiles cut from masks.

A mask (same size as its photo, non-zero = corrosion) says more than boxes:
it gives the score-map detector exact targets, and it lets us cut a photo into
tiles that are certainly clean (no corrosion pixel) or mostly corroded, which
is a rust / no-rust test in the inspection domain, and hard negatives (clean
steel, paint, concrete, date stamps) for the classifier.

    corrosion-vt/detection/{train,test}/vt.<split>.N.{jpg,xml}
    corrosion-vt/masks/{train,test}/vt.<split>.N.png      (values 0..3)
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ml.dataset import Photo, sha256_file
from ml.voc import read_voc, write_atomic


@dataclass(frozen=True)
class MaskedPhoto:
    """A photo with rust boxes (from its XML) and a rust mask."""

    id: str
    image: Path
    mask: Path
    boxes: np.ndarray  # (N, 4) xyxy pixels


def masked_photos(root: str | os.PathLike, split: str) -> list[MaskedPhoto]:
    """The photos of one split of a corrosion-vt style folder, in source-number order."""
    root = Path(root)
    folder = root / "detection" / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    out = []
    for xml in sorted(folder.glob("*.xml"), key=lambda p: int(p.stem.rsplit(".", 1)[-1])):
        ann = read_voc(xml)
        boxes = np.array([[b.xmin, b.ymin, b.xmax, b.ymax] for b in ann.boxes], np.float32)
        out.append(
            MaskedPhoto(
                xml.stem,
                xml.with_suffix(".jpg"),
                root / "masks" / split / f"{xml.stem}.png",
                boxes.reshape(-1, 4),
            )
        )
    return out


@dataclass(frozen=True)
class Tile:
    """A square region of a photo: (x0, y0, x1, y1) in its pixels, with its rust share."""

    box: tuple[int, int, int, int]
    rust_share: float

    def label(self, rust_min: float) -> int | None:
        """0: no corrosion pixel; 1: at least `rust_min` corroded; None: in between."""
        if self.rust_share == 0:
            return 0
        return 1 if self.rust_share >= rust_min else None


def mask_tiles(mask: np.ndarray, tile: int) -> list[Tile]:
    """A grid of `tile`-px squares over a (H, W) mask (the grid centred, edges left over)."""
    h, w = mask.shape
    rust = mask > 0
    ox, oy = (w % tile) // 2, (h % tile) // 2
    tiles = []
    for y in range(oy, h - tile + 1, tile):
        for x in range(ox, w - tile + 1, tile):
            share = float(rust[y : y + tile, x : x + tile].mean())
            tiles.append(Tile((x, y, x + tile, y + tile), share))
    return tiles


def tile_photos(
    photos: list[MaskedPhoto],
    out_dir: str | os.PathLike,
    tile: int = 256,
    rust_min: float = 0.5,
) -> list[Photo]:
    """Cut every photo into labelled tiles (see `Tile.label`), written as JPEG files under
    `out_dir` once (named by the photo's hash and place), as `Photo`s grouped by source
    photo (so a split or CV never separates one photo's tiles)."""
    out_dir = Path(out_dir)
    result = []
    for p in photos:
        sha = sha256_file(p.image)
        with Image.open(p.mask) as m:
            mask = np.asarray(m.convert("L"))
        image = None
        for t in mask_tiles(mask, tile):
            label = t.label(rust_min)
            if label is None:
                continue
            x0, y0, x1, y1 = t.box
            path = out_dir / f"{sha[:16]}-{x0}-{y0}-{tile}.jpg"
            if not path.is_file():
                if image is None:
                    image = Image.open(p.image).convert("RGB")
                buf = io.BytesIO()
                image.crop(t.box).save(buf, format="JPEG", quality=92)
                write_atomic(path, buf.getvalue())
            tile_sha = hashlib.sha256(path.read_bytes()).hexdigest()
            result.append(
                Photo(
                    id=f"{p.id}@{x0},{y0}",
                    path=path,
                    sha256=tile_sha,
                    label=label,
                    width=tile,
                    height=tile,
                    group=p.id,
                    sources=[str(p.image)],
                )
            )
    return result
