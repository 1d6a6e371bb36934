"""Speed of the rust models on this machine, beside two baselines run in the same process.

Measured on the seed photos (../shared/data/corrosion-seed/classification):
1. embedding throughput, photos/s, INCLUDING JPEG decode and resize:
   ours (Pillow draft-mode decode in a thread pool, overlapped with the
   network run in LiteRT on a CPU; MobileNetV2-0.35 at 224 px and at the
   classifier's default size; also the same network run by Keras),
   the seed README baseline (plain decode + resize, `model.predict`, batch 32,
   MobileNetV2-0.35 at 224 px) and the article's compute recipe (VGG16 at
   150 px, weights=None: its weights can't be had here, timing is the same);
2. classifier refit time on cached embeddings: the seed set and 1,000
   synthetic photos (ours, with calibration folds and augmented views) beside
   the baseline's logistic regression, and the article's recipe (a dense head
   over frozen VGG16, retrained with augmentation: one epoch measured, x15);
3. detector training time per epoch (ml.detector defaults, the article's
   39 training photos);
4. predict latency, ms per photo in a warm process (one photo at a time, as
   a worker scores an upload).

    .venv/bin/python benchmarks/speed.py               # everything (~5-10 min on 2 cores)
    .venv/bin/python benchmarks/speed.py --skip-detector
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEED = ROOT.parent / "shared" / "data" / "corrosion-seed"
WEIGHTS = ROOT.parent / "shared" / "weights"


def ensure_keras_home() -> None:
    """Use ../shared/weights offline through a private KERAS_HOME (unless one is set)."""
    if "KERAS_HOME" in os.environ:
        return
    import shutil

    home = Path(tempfile.mkdtemp(prefix="keras_home_"))
    (home / "models").mkdir()
    for f in WEIGHTS.glob("*.h5"):
        shutil.copy(f, home / "models" / f.name)
    os.environ["KERAS_HOME"] = str(home)


def best_of(fn, repeat: int = 2) -> float:
    """Seconds of the fastest of `repeat` runs (the machine is shared: noise only adds)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def naive_load(path: Path, size: int) -> np.ndarray:
    """The baseline's decode: full-resolution decode, then resize."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), np.float32)


def baseline_model(kind: str):
    import keras

    from ml.backbones import build_backbone

    if kind == "seed":
        base = build_backbone("mobilenet_v2_035", 224)
        inp = keras.Input((224, 224, 3))
        out = keras.layers.GlobalAveragePooling2D()(base(inp / 127.5 - 1.0))
        return keras.Model(inp, out), 224
    # the article: VGG16 frozen base at 150 px, Flatten, Dense(256), Dense(1)
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(150, 150, 3))
    base.trainable = False
    inp = keras.Input((150, 150, 3))
    x = keras.layers.Flatten()(base(keras.applications.vgg16.preprocess_input(inp)))
    x = keras.layers.Dense(256, activation="relu")(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inp, out), 150


def baseline_embed(model, size: int, paths: list[Path], batch: int = 32) -> np.ndarray:
    out = []
    for i in range(0, len(paths), batch):
        x = np.stack([naive_load(p, size) for p in paths[i : i + batch]])
        out.append(model.predict(x, batch_size=batch, verbose=0))
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-detector", action="store_true")
    parser.add_argument("--detector-epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs per figure")
    args = parser.parse_args(argv)
    ensure_keras_home()

    import keras
    import tensorflow as tf
    from sklearn.linear_model import LogisticRegression

    from ml.classifier import ClassifierConfig, RustClassifier
    from ml.embeddings import Embedder, embed_photos

    gpu = bool(tf.config.list_physical_devices("GPU"))
    device = "GPU" if gpu else f"CPU ({os.cpu_count()} cores)"
    paths = sorted((SEED / "classification").rglob("*.jpg"))
    shas = [str(p) for p in paths]
    n = len(paths)
    rows: list[tuple[str, str, str, str]] = []  # (measure, ours, seed baseline, article)
    cfg = ClassifierConfig()
    size = cfg.image_sizes[0]

    # 1. embedding throughput incl. decode + resize (no cache)
    ours224 = Embedder("mobilenet_v2_035", 224, pooling=cfg.pooling)
    oursdef = Embedder("mobilenet_v2_035", size, pooling=cfg.pooling)
    keras224 = Embedder("mobilenet_v2_035", 224, pooling=cfg.pooling, runtime="keras")
    seed_model, _ = baseline_model("seed")
    art_model, _ = baseline_model("article")
    for e in (ours224, oursdef, keras224):
        embed_photos(e, paths[:64], shas[:64], batch_size=64)  # warm up (and convert once)
    baseline_embed(seed_model, 224, paths[:32])
    baseline_embed(art_model, 150, paths[:32])
    t224 = best_of(lambda: embed_photos(ours224, paths, shas, batch_size=64), args.repeat)
    tdef = best_of(lambda: embed_photos(oursdef, paths, shas, batch_size=32), args.repeat)
    tkeras = best_of(lambda: embed_photos(keras224, paths, shas, batch_size=64), args.repeat)
    tseed = best_of(lambda: baseline_embed(seed_model, 224, paths), args.repeat)
    tart = best_of(lambda: baseline_embed(art_model, 150, paths), args.repeat)
    rows.append(
        (
            "embedding photos/s incl. decode, 224 px",
            f"{n / t224:.0f}",
            f"{n / tseed:.0f}",
            f"{n / tart:.0f} (150 px)",
        )
    )
    rows.append(
        (f"embedding photos/s incl. decode, {size} px (default)", f"{n / tdef:.0f}", "–", "–")
    )
    rows.append(
        (
            "embedding photos/s incl. decode, 224 px, run by Keras",
            f"{n / tkeras:.0f}",
            "–",
            "–",
        )
    )

    # 2. classifier refit on cached embeddings
    rng = np.random.default_rng(0)
    clf = RustClassifier(cfg, base=oursdef.base)
    views = len(cfg.train_views)
    for label, count in (("seed set", 149), ("1,000 photos", 1000)):
        y = (np.arange(count) % 2).astype(int)
        x = rng.normal(size=(count, views, oursdef.dim)).astype(np.float32)
        x += y[:, None, None] * rng.normal(scale=0.3, size=oursdef.dim).astype(np.float32)
        groups = [str(i) for i in range(count)]
        ours = best_of(lambda x=x, y=y, g=groups: clf.fit_embeddings(x, y, g), 1)
        xb = x[:, 0, :1280]  # the baseline: one view, average-pooled 1280-d, plain LR
        base = best_of(lambda xb=xb, y=y: LogisticRegression(max_iter=1000).fit(xb, y), 1)
        rows.append(
            (
                f"classifier refit s, {label}",
                f"{ours:.1f}",
                f"{base:.1f}",
                f"{'see below' if count == 149 else '–'}",
            )
        )
    # the article retrains its dense head through the frozen VGG16 with augmentation:
    # each of its 15 epochs is a full forward pass over all photos
    pix = np.stack([naive_load(p, 150) for p in paths])
    art_model.compile(keras.optimizers.RMSprop(1e-4), "binary_crossentropy")
    ys = np.array([1.0 if "norust" not in p.parent.name else 0.0 for p in paths])
    art_model.fit(pix[:32], ys[:32], batch_size=32, epochs=1, verbose=0)
    epoch = best_of(lambda: art_model.fit(pix, ys, batch_size=32, epochs=1, verbose=0), 1)
    rows.append(
        (
            "classifier retrain s, article recipe (15 epochs = 15 x 1 measured)",
            "–",
            "–",
            f"{15 * epoch:.0f}",
        )
    )

    # 3. detector training time per epoch
    det = None
    if not args.skip_detector:
        from ml.detector import DetectorConfig, DetSample, train_detector
        from ml.voc import read_voc

        train = []
        for xml in sorted((SEED / "detection" / "train").glob("*.xml")):
            ann = read_voc(xml)
            b = np.array([[q.xmin, q.ymin, q.xmax, q.ymax] for q in ann.boxes], np.float32)
            train.append(DetSample(xml.with_suffix(".jpg"), b))
        # each training run builds and traces a new model: time 1 epoch and 1 + N epochs,
        # and take the difference, so the per-epoch figure holds no set-up cost
        one = train_detector(train, DetectorConfig(epochs=1), progress=False)
        dcfg = DetectorConfig(epochs=1 + args.detector_epochs)
        det = train_detector(train, dcfg, progress=False)
        per_epoch = (det.info["train_seconds"] - one.info["train_seconds"]) / args.detector_epochs
        rows.append(
            (
                f"detector training s/epoch ({len(train)} photos, {dcfg.image_size} px)",
                f"{per_epoch:.1f}",
                "–",
                "–",
            )
        )

    # 4. predict latency, one photo at a time, warm
    clf.fit_embeddings(rng.normal(size=(20, 2, oursdef.dim)).astype(np.float32), np.arange(20) % 2)
    one = paths[:20]
    clf.predict([one[0]])
    ms = best_of(lambda: [clf.predict([p]) for p in one], args.repeat) / len(one) * 1e3
    seed_ms = (
        best_of(lambda: [baseline_embed(seed_model, 224, [p]) for p in one], args.repeat)
        / len(one)
        * 1e3
    )
    art_ms = (
        best_of(lambda: [baseline_embed(art_model, 150, [p]) for p in one], args.repeat)
        / len(one)
        * 1e3
    )
    rows.append(
        (
            f"classifier predict ms/photo (decode + {size} px x2 views + head)",
            f"{ms:.0f}",
            f"{seed_ms:.0f}",
            f"{art_ms:.0f}",
        )
    )
    if det is not None:
        det.predict([one[0]])
        dms = best_of(lambda: [det.predict([p]) for p in one], args.repeat) / len(one) * 1e3
        rows.append(("detector predict ms/photo (incl. NMS)", f"{dms:.0f}", "–", "–"))

    widths = [max(len(r[i]) for r in rows + [HEADER]) for i in range(4)]
    run = ours224.runtime
    print(f"\nspeed on {device}; embeddings run by {run}; {n} seed photos; best of {args.repeat}\n")
    for r in [HEADER, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    print("\ncommand: .venv/bin/python benchmarks/speed.py " + " ".join(argv or sys.argv[1:]))
    return 0


HEADER = ("measure", "ours", "seed README baseline", "article recipe (VGG16 150 px)")

if __name__ == "__main__":
    sys.exit(main())
