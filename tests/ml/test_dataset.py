"""VOC dataset folders: from-folders, round trips, splits that never leak, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.dataset import (
    DatasetError,
    Photo,
    article_split,
    dataset_hash,
    from_folders,
    group_near_duplicates,
    grouped_folds,
    load_dataset,
    make_splits,
    perceptual_hash,
)
from ml.voc import VocError, read_voc, to_xml_bytes, write_voc


def test_importing_ml_data_modules_does_not_load_tensorflow():
    code = (
        "import sys, ml, ml.voc, ml.dataset, ml.images, ml.active; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_seed_labelimg_files_round_trip(seed_dir, tmp_path):
    xmls = sorted((seed_dir / "detection").rglob("*.xml"))
    assert len(xmls) == 45
    for xml in xmls:
        ann = read_voc(xml)
        write_voc(tmp_path / xml.name, ann)
        again = read_voc(tmp_path / xml.name)
        assert [(b.xmin, b.ymin, b.xmax, b.ymax, b.name) for b in again.boxes] == [
            (b.xmin, b.ymin, b.xmax, b.ymax, b.name) for b in ann.boxes
        ]
        assert (again.width, again.height, again.filename) == (ann.width, ann.height, ann.filename)
        assert to_xml_bytes(again) == to_xml_bytes(ann)


def test_from_folders_dedups_merges_boxes_and_writes_voc(tiny_voc, source_dir):
    ds = tiny_voc
    root = ds.root
    # 8 rust + 8 norust + 1 byte-identical copy + 3 labelImg copies of rust photos
    assert ds.manifest["files"] == 20
    assert len(ds) == 16
    copy = next(p for p in ds.photos if "norust/copy_of_0.jpg" in p.sources)
    assert sorted(copy.sources) == ["norust/copy_of_0.jpg", "norust/norust.0.jpg"]
    boxed = [p for p in ds.photos if p.boxed]
    assert len(boxed) == 3 and all(p.label == 1 for p in boxed)
    assert all(len(p.sources) == 2 for p in boxed)  # rust/ + labelimg/
    # standard VOC layout
    ids = {
        ln
        for s in ("train", "val", "test")
        for ln in (root / "ImageSets/Main" / f"{s}.txt").read_text().split()
    }
    assert ids == {p.id for p in ds.photos}
    lines = (root / "ImageSets/Main/rust_trainval.txt").read_text().splitlines()
    assert all(ln.split()[1] in ("1", "-1") for ln in lines)
    assert sorted(f.stem for f in (root / "Annotations").glob("*.xml")) == sorted(
        p.id for p in boxed
    )
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["counts"] == {
        "photos": 16,
        "rust": 8,
        "norust": 8,
        "boxed": 3,
        "boxes": 3,
        "groups": len({p.group for p in ds.photos}),
    }
    # reading the folder back gives the same photos, verdicts and boxes
    again = load_dataset(root, verify=True)
    assert again.dataset_hash == ds.dataset_hash
    for p in again.photos:
        q = ds.by_id[p.id]
        assert (p.label, p.sha256) == (q.label, q.sha256)
        np.testing.assert_array_equal(p.boxes, q.boxes)


def test_dataset_hash_follows_verdicts_and_boxes(tiny_voc):
    photos = [Photo(**p.__dict__) for p in tiny_voc.photos]
    assert dataset_hash(photos) == tiny_voc.dataset_hash
    photos[0].label = 1 - photos[0].label
    assert dataset_hash(photos) != tiny_voc.dataset_hash
    photos[0].label = 1 - photos[0].label
    photos[0].boxes = np.array([[1, 1, 5, 5]], dtype=np.float32)
    assert dataset_hash(photos) != tiny_voc.dataset_hash


def test_from_folders_on_the_seed_finds_149_photos_and_the_article_split(seed_dir, tmp_path):
    ds = from_folders(seed_dir, tmp_path / "seed")
    c = ds.manifest["counts"]
    assert (ds.manifest["files"], c["photos"], c["rust"], c["norust"], c["boxed"]) == (
        200,
        149,
        82,
        67,
        45,
    )
    art = ds.splits["article"]
    assert len(art["test"]) == 15
    assert not set(art["train"]) & set(art["test"])
    # rust.29 = rust.76 (byte-identical): one photo, kept out of training
    dup = ds.by_id["rust.29"]
    assert sorted(Path(s).name for s in dup.sources if "classification" in s) == [
        "rust.29.jpg",
        "rust.76.jpg",
    ]
    assert "rust.29" in art["test"]


def test_splits_are_stable_when_photos_are_added():
    photos = [
        Photo(id=f"p{i}", path=Path("x"), sha256=str(i), label=i % 2, group=f"p{i}")
        for i in range(200)
    ]
    first = make_splits(photos)
    more = make_splits(
        photos
        + [Photo(id=f"q{i}", path=Path("x"), sha256="q", label=1, group=f"q{i}") for i in range(50)]
    )
    for part in ("train", "val", "test"):
        assert set(first[part]) <= set(more[part])
    sizes = {k: len(v) for k, v in first.items()}
    assert 20 <= sizes["test"] <= 45 and 20 <= sizes["val"] <= 45


def test_near_duplicates_are_grouped_and_never_split(tmp_path, synth):
    src = synth.make_source(tmp_path / "src", n=10, boxed=0)
    # a resized, re-encoded copy of rust.3: different bytes, same photo
    Image.open(src / "rust" / "rust.3.jpg").resize((48, 36)).save(
        src / "rust" / "rust.3.small.jpg", quality=70
    )
    ds = from_folders(src, tmp_path / "voc")
    a, b = ds.by_id["rust.3"], ds.by_id["rust.3.small"]
    assert a.sha256 != b.sha256 and a.group == b.group
    for name, parts in ds.splits.items():
        where = [k for k, ids in parts.items() if a.id in ids or b.id in ids]
        assert len(where) <= 1, name
    for tr, te in grouped_folds(ds.labelled(), 4):
        tr_groups = {ds.labelled()[i].group for i in tr}
        assert not tr_groups & {ds.labelled()[i].group for i in te}


def test_phash_distance_groups_only_close_photos(tmp_path, synth):
    a = synth.make_photo(tmp_path / "a.jpg", "rust", 1)
    b = synth.make_photo(tmp_path / "b.jpg", "norust", 2)
    hashes = {"a": perceptual_hash(a), "b": perceptual_hash(b), "a2": perceptual_hash(a)}
    groups = group_near_duplicates(hashes)
    assert groups["a"] == groups["a2"] == "a" and groups["b"] == "b"


def test_article_split_without_article_names_is_none():
    assert (
        article_split(
            [Photo(id="x", path=Path("x"), sha256="s", label=1, sources=["rust/IMG_0001.jpg"])]
        )
        is None
    )


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("corrupt_image", "not a readable image"),
        ("malformed_xml", "malformed XML"),
        ("box_outside", "is outside the 64x48 image"),
        ("rust_boxes_on_norust", "rust boxes on a photo filed as no rust"),
    ],
)
def test_bad_source_files_raise_errors_naming_the_file(tmp_path, synth, damage, expected):
    src = synth.make_source(tmp_path / "src", n=3, boxed=1)
    xml = src / "labelimg" / "rust.0.xml"
    if damage == "corrupt_image":
        bad = src / "rust" / "broken.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    elif damage == "malformed_xml":
        bad = xml
        bad.write_text("<annotation><size><width>64</width>")
    elif damage == "box_outside":
        bad = xml
        bad.write_text(xml.read_text().replace("<xmax>40</xmax>", "<xmax>90</xmax>"))
    else:
        bad = src / "norust" / "boxed.xml"
        shutil.copyfile(xml, bad)
        shutil.copyfile(src / "labelimg" / "rust.0.jpg", src / "norust" / "boxed.jpg")
    with pytest.raises(DatasetError) as err:
        from_folders(src, tmp_path / "voc")
    assert str(bad) in str(err.value) and expected in str(err.value)


def test_load_dataset_errors_name_the_file(tiny_voc):
    root = tiny_voc.root
    xml = next((root / "Annotations").glob("*.xml"))
    xml.write_text("<annotation>")
    with pytest.raises(VocError, match=str(xml)):
        load_dataset(root)
    with pytest.raises(DatasetError, match="not a VOC dataset folder"):
        load_dataset(root / "Annotations")


def test_output_inside_source_is_refused(source_dir):
    with pytest.raises(DatasetError, match="inside the source"):
        from_folders(source_dir, source_dir / "voc")
