"""Tiny synthetic photo folders for the ml/ tests (few pixels, built in milliseconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.voc import VocAnnotation, VocBox, write_voc

RUST_PATCH = (150, 60, 20)


def make_photo(
    path: Path,
    kind: str,
    seed: int,
    size: tuple[int, int] = (64, 48),
    box: tuple[int, int, int, int] | None = None,
) -> Path:
    """A noisy photo: rust-brown blotches for "rust", grey-blue paint for "norust"."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.array((90, 110, 140) if kind == "norust" else (120, 100, 90), dtype=float)
    img = base + rng.normal(0, 12, (h, w, 3))
    if kind == "rust":
        x0, y0, x1, y1 = box or (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
        img[y0:y1, x0:x1] = np.array(RUST_PATCH) + rng.normal(0, 25, (y1 - y0, x1 - x0, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path, quality=92)
    return path


def make_source(root: Path, n: int = 8, boxed: int = 3) -> Path:
    """The seed's layout: rust/, norust/, and a labelImg folder of image+XML pairs.

    Includes one byte-identical copy (norust/copy_of_0.jpg) like the seed's
    six duplicate pairs, and boxed photos that are also in rust/.
    """
    for i in range(n):
        make_photo(root / "rust" / f"rust.{i}.jpg", "rust", i)
        make_photo(root / "norust" / f"norust.{i}.jpg", "norust", 100 + i)
    shutil.copyfile(root / "norust" / "norust.0.jpg", root / "norust" / "copy_of_0.jpg")
    for i in range(boxed):
        box = (8 + i, 6, 40 + i, 30)
        img = make_photo(root / "labelimg" / f"rust.{i}.jpg", "rust", i)
        # same bytes as rust/rust.<i>.jpg: it is one photo, now with boxes
        shutil.copyfile(img, root / "rust" / f"rust.{i}.jpg")
        write_voc(
            img.with_suffix(".xml"),
            VocAnnotation(
                filename=img.name,
                width=64,
                height=48,
                folder="labelimg",
                path=str(img),
                boxes=[VocBox(*box)],
            ),
        )
    return root


@pytest.fixture
def source_dir(tmp_path) -> Path:
    return make_source(tmp_path / "src")


@pytest.fixture
def tiny_voc(tmp_path, source_dir):
    from ml.dataset import from_folders

    return from_folders(source_dir, tmp_path / "voc")


@pytest.fixture
def embedding_cache(tmp_path):
    from ml.embeddings import EmbeddingCache

    return EmbeddingCache(tmp_path / "emb")


@pytest.fixture
def synth():
    """The photo/source builders, for tests that need their own variants."""
    import types

    return types.SimpleNamespace(make_photo=make_photo, make_source=make_source)
