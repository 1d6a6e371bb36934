"""Rust / no-rust tiles cut from masks, and the corrosion-vt folder layout (tiny fixtures)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ml.masks import mask_tiles, masked_photos, tile_photos
from ml.voc import VocAnnotation, VocBox, write_voc


def vt_folder(root, n: int = 2):
    """A corrosion-vt style folder: photo + XML under detection/test, mask under masks/test."""
    for i in range(n):
        img = np.full((96, 160, 3), 120, np.uint8)
        img[0:64, 0:64] = (150, 60, 20)
        mask = np.zeros((96, 160), np.uint8)
        mask[0:64, 0:64] = 1 + i  # condition states 1..3: all rust
        mask[70:80, 100:110] = 3  # a speck: makes its tile neither clean nor mostly rust
        (root / "detection" / "test").mkdir(parents=True, exist_ok=True)
        (root / "masks" / "test").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "detection" / "test" / f"vt.test.{i}.jpg")
        Image.fromarray(mask).save(root / "masks" / "test" / f"vt.test.{i}.png")
        write_voc(
            root / "detection" / "test" / f"vt.test.{i}.xml",
            VocAnnotation(
                filename=f"vt.test.{i}.jpg", width=160, height=96, boxes=[VocBox(0, 0, 64, 64)]
            ),
        )
    return root


def test_tiles_are_clean_or_mostly_rust_and_the_rest_is_left_out():
    mask = np.zeros((96, 160), np.uint8)
    mask[0:40, 0:40] = 2
    mask[90, 150] = 1
    tiles = mask_tiles(mask, 32)
    # 5 x 3 tiles of 32 px; the grid is centred: 0 px left over across, 0 down
    assert len(tiles) == 15 and tiles[0].box == (0, 0, 32, 32)
    shares = {t.box: t.rust_share for t in tiles}
    assert shares[(0, 0, 32, 32)] == 1.0
    assert shares[(32, 32, 64, 64)] == 64 / 1024
    labels = [t.label(0.5) for t in tiles]
    assert labels.count(1) == 1  # only the fully corroded corner tile
    assert labels.count(None) == 4  # partly rust (3 next to the corner, 1 with a speck)
    assert labels.count(0) == 10


def test_tile_photos_writes_labelled_tiles_grouped_by_photo(tmp_path):
    photos = masked_photos(vt_folder(tmp_path / "vt"), "test")
    assert [p.id for p in photos] == ["vt.test.0", "vt.test.1"]
    assert photos[0].boxes.tolist() == [[0, 0, 64, 64]]
    tiles = tile_photos(photos, tmp_path / "tiles", tile=32, rust_min=0.5)
    again = tile_photos(photos, tmp_path / "tiles", tile=32, rust_min=0.5)  # files reused
    assert [t.sha256 for t in tiles] == [t.sha256 for t in again]
    assert {t.group for t in tiles} == {"vt.test.0", "vt.test.1"}
    rust = [t for t in tiles if t.label == 1]
    assert len(rust) == 2 * 4  # the 64 px corner is 2 x 2 tiles, per photo
    pixels = np.asarray(Image.open(rust[0].path))
    assert pixels.shape == (32, 32, 3) and abs(int(pixels[..., 0].mean()) - 150) < 10
    clean = [t for t in tiles if t.label == 0]
    assert all(np.asarray(Image.open(t.path))[..., 0].mean() < 130 for t in clean)
    assert len(tiles) == 2 * (15 - 1)  # 5 x 3 tiles each, less the one with the speck


def test_mask_metrics_measure_cover_precision_and_heat_map_ranking():
    from ml.detector import Detections
    from ml.metrics import mask_metrics

    mask = np.zeros((40, 40), np.uint8)
    mask[0:20, 0:20] = 1  # the top-left quarter is rust
    heat = np.array([[0.9, 0.2], [0.1, 0.3]], np.float32)  # 2 x 2 cells of 20 px
    boxes = np.array([[0, 0, 20, 10], [20, 20, 40, 40], [0, 0, 40, 40]], np.float32)
    pred = Detections(boxes, np.array([0.8, 0.5, 0.1], np.float32), heat)
    m = mask_metrics([mask], [pred], min_score=0.3)
    assert m["covered"] == 0.5  # the first box covers half the rust; the third scores too low
    assert m["on_rust"] == 200 / 600
    assert m["heatmap_auc"] == 1.0
    assert "heatmap_auc" not in mask_metrics([mask], [(boxes, pred.scores)])
