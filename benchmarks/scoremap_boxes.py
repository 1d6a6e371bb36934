"""Box-extraction settings of a trained score-map detector, chosen on photos it never saw.

Loads a score-map artifact (benchmarks/external.py keeps the seed + VT one under its work
folder), computes its maps once for VT train photos outside its training sample (the
validation photos) and for VT test, then scores several `box_thresholds` / `min_region`
settings on the validation photos; only the default and the validation winner are scored
on VT test (protocol rule 3 of benchmarks/external.py: test figures never pick).

    .venv/bin/python benchmarks/scoremap_boxes.py /tmp/rustwatch-external/detector-scoremap-seed-vt
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.speed import ensure_keras_home  # noqa: E402

VT = ROOT.parent / "shared" / "data" / "corrosion-vt"
SETTINGS = {
    "default": {},
    "0.5..0.9": {"box_thresholds": (0.5, 0.6, 0.7, 0.8, 0.9)},
    "0.3..0.9": {"box_thresholds": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)},
    "0.1..0.9": {"box_thresholds": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)},
    "0.3..0.9, min_region 0.0002": {
        "box_thresholds": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        "min_region": 0.0002,
    },
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a score-map detector folder (detector.keras + detector.json)")
    p.add_argument("--trained-on", type=int, default=150, help="VT train photos it was trained on")
    p.add_argument("--val", type=int, default=40, help="unseen VT train photos to choose on")
    args = p.parse_args(argv)
    ensure_keras_home()
    from ml.detector import RustDetector
    from ml.detector.scoremap import boxes_from_map, stride
    from ml.masks import masked_photos
    from ml.metrics import detection_metrics

    det = RustDetector.load(Path(args.model))
    train = masked_photos(VT, "train")
    # the sample benchmarks/external.py trained on (vt_samples: seed 0)
    used = set(np.random.default_rng(0).choice(len(train), args.trained_on, replace=False))
    val = [q for i, q in enumerate(train) if i not in used][: args.val]
    test = masked_photos(VT, "test")
    size = det.config.image_size

    def maps(photos):
        out = []
        for q in photos:
            (found,) = det.predict([q.image])
            out.append((found.heatmap, size / max(Image.open(q.image).size)))
        return out

    def score(photos, photo_maps, config):
        preds = []
        for heat, scale in photo_maps:
            boxes, scores = boxes_from_map(heat, config, upsample=stride(config))
            preds.append((boxes / scale, scores))
        return detection_metrics([q.boxes for q in photos], preds)

    val_maps = maps(val)
    results = {
        name: score(val, val_maps, replace(det.config, **kw)) for name, kw in SETTINGS.items()
    }
    for name, m in results.items():
        print(
            f"VT val ({len(val)} unseen train photos), {name}: AP {m['AP']:.3f} "
            f"AP50 {m['AP50']:.3f} AR100 {m['AR100']:.3f}"
        )
    best = max(results, key=lambda k: results[k]["AP50"])
    print(f"best on val: {best}")
    test_maps = maps(test)
    for name in dict.fromkeys(("default", best)):
        m = score(test, test_maps, replace(det.config, **SETTINGS[name]))
        print(
            f"VT test, {name}: AP {m['AP']:.3f} AP50 {m['AP50']:.3f} AP75 {m['AP75']:.3f} "
            f"AR100 {m['AR100']:.3f}"
        )
    print(
        "command: .venv/bin/python benchmarks/scoremap_boxes.py " + " ".join(argv or sys.argv[1:])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
