"""The learning loop, timed on this machine. One section per part of the loop.

train    wall time from "train" to "new suggestions on all unlabelled photos" for the
         seed set (../shared/data/corrosion-seed): import, then a run as the `train`
         worker does it (snapshot, both models, candidate and deployed evaluated on the
         same val photos, gate, deploy) and the re-scoring the deploy starts. Run twice:
         the second run evaluates against the first (a real gate) and reuses the
         embedding cache (the classifier's warm start). Goal: < 5 min.
rss      peak resident memory of one training run on 1,000 photos (resized copies of
         the seed photos with their boxes scaled), to show that training streams from
         files instead of decoding the data set into memory.

Everything runs in this one process (Celery eager, a throw-away SQLite and media
folder), so the figures are the work itself, without broker latency.

    .venv/bin/python benchmarks/loop.py train
    .venv/bin/python benchmarks/loop.py train --config '{"detector": {"epochs": 10}}'
    .venv/bin/python benchmarks/loop.py rss --photos 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEED = ROOT.parent / "shared" / "data" / "corrosion-seed"
WEIGHTS = ROOT.parent / "shared" / "weights"


def setup_django(var: Path, config: dict) -> None:
    """A private data folder, eager Celery, offline ImageNet weights, migrated."""
    keras_home = var / "keras"
    (keras_home / "models").mkdir(parents=True)
    for f in WEIGHTS.glob("*.h5"):
        shutil.copy(f, keras_home / "models" / f.name)
    os.environ.update(
        {
            "KERAS_HOME": str(keras_home),
            "RUSTWATCH_VAR": str(var),
            "RUSTWATCH_EMBEDDING_CACHE": str(var / "embeddings"),
            "CELERY_TASK_ALWAYS_EAGER": "1",
            "DJANGO_SETTINGS_MODULE": "inspection.settings",
            "RUSTWATCH_TRAIN_AFTER_LABELS": "0",
            "RUSTWATCH_TRAIN_CONFIG": json.dumps(config),
            "LOG_LEVEL": "WARNING",
        }
    )
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hold_out_unlabelled(share: float = 0.2) -> int:
    """Make a share of the photos unlabelled (verdict unknown, no boxes): they get scored."""
    from inspection.models import Box, Photo
    from ml.dataset import unit_hash

    ids = [p.id for p in Photo.objects.only("id", "sha256") if unit_hash(p.sha256, "bench") < share]
    Box.objects.filter(photo_id__in=ids).delete()
    Photo.objects.filter(id__in=ids).update(verdict="unknown", verified=False)
    return len(ids)


def timed_run(label: str) -> dict:
    from inspection.models import Job, Photo, TrainingRun
    from inspection.services.training import start_run

    t0 = time.perf_counter()
    run = start_run(user=None, trigger=TrainingRun.Trigger.MANUAL)  # eager: trains here
    wall = time.perf_counter() - t0
    run = TrainingRun.objects.select_related("job").get(pk=run.pk)
    if run.job.state != Job.State.SUCCEEDED:
        raise SystemExit(f"{label}: run {run.job.state}: {run.job.error}")
    unlabelled = Photo.objects.filter(verdict="unknown", verified=False)
    scored = unlabelled.filter(suggestion_state="ready").count()
    return {
        "run": label,
        "wall_s": wall,
        "timings": run.metrics.get("timings", {}),
        "gates": {v.kind: v.gate for v in run.versions.all()},
        "val": run.metrics.get("val", {}),
        "unlabelled": unlabelled.count(),
        "scored": scored,
    }


def section_train(args: argparse.Namespace) -> None:
    config = json.loads(args.config or "{}")
    with tempfile.TemporaryDirectory(prefix="rustwatch-loop-") as tmp:
        setup_django(Path(tmp), config)
        from inspection.services.voc_io import import_voc

        t = time.perf_counter()
        report = import_voc(SEED, inspection_name="seed")
        import_s = time.perf_counter() - t
        held = hold_out_unlabelled()
        print(
            f"seed import: {report.as_dict().get('photos_created', '?')} photos in "
            f"{import_s:.1f} s; {held} made unlabelled for scoring"
        )
        rows = [timed_run("first (no model deployed)"), timed_run("second (gate vs first)")]
    print()
    print("| run | train->suggestions s | snapshot s | train s | evaluate s | gate | scored |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["timings"]
        gates = ", ".join(f"{k} {v}" for k, v in sorted(r["gates"].items()))
        print(
            f"| {r['run']} | {r['wall_s']:.1f} | {t.get('snapshot_s', 0):.1f} | "
            f"{t.get('train_s', 0):.1f} | {t.get('evaluate_s', 0):.1f} | {gates} | "
            f"{r['scored']}/{r['unlabelled']} |"
        )
    val = rows[-1]["val"]
    clf, det = val.get("classifier", {}), val.get("detector", {})
    print(
        f"\nsecond run on val: accuracy {clf.get('accuracy', float('nan')):.3f}, "
        f"ROC-AUC {clf.get('roc_auc') or float('nan'):.3f}, detector AP50 "
        f"{det.get('AP50', float('nan')):.3f}; peak RSS {peak_rss_mib():.0f} MiB"
    )
    print(f"config: {json.dumps(config) or 'ml defaults'}; goal: < 300 s per run")
    print(f"command: .venv/bin/python benchmarks/loop.py train --config '{args.config or ''}'")


def synthetic_copies(out: Path, n: int) -> Path:
    """n photos in rust/, norust/ and labelImg pairs: seed photos resized, boxes scaled."""
    import numpy as np
    from PIL import Image

    from ml.voc import VocAnnotation, VocBox, read_voc, write_voc

    rng = np.random.default_rng(0)
    sources = sorted((SEED / "classification").glob("*/*.jpg"))
    sources = [sources[k] for k in rng.permutation(len(sources))]
    boxed = {p.stem: p for p in (SEED / "detection").glob("*/*.xml")}
    for i in range(n):
        src = sources[i % len(sources)]
        kind = src.parent.name
        scale = float(rng.uniform(0.5, 1.5))
        with Image.open(src) as img:
            img = img.convert("RGB")
            w, h = max(32, int(img.width * scale)), max(32, int(img.height * scale))
            copy = img.resize((w, h))
        arr = np.asarray(copy, dtype=np.int16) + rng.integers(-3, 4, (h, w, 3))
        copy = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
        folder = out / ("labelimg" if src.stem in boxed else kind)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{src.stem}-{i}.jpg"
        copy.save(target, quality=90)
        if src.stem in boxed:
            ann = read_voc(boxed[src.stem])
            sx, sy = w / ann.width, h / ann.height
            write_voc(
                target.with_suffix(".xml"),
                VocAnnotation(
                    filename=target.name,
                    width=w,
                    height=h,
                    boxes=[
                        VocBox(
                            max(0, int(b.xmin * sx)),
                            max(0, int(b.ymin * sy)),
                            min(w, max(int(b.xmin * sx) + 1, int(b.xmax * sx))),
                            min(h, max(int(b.ymin * sy) + 1, int(b.ymax * sy))),
                        )
                        for b in ann.boxes
                    ],
                ),
            )
    return out


def section_rss(args: argparse.Namespace) -> None:
    config = json.loads(args.config or "{}")
    with tempfile.TemporaryDirectory(prefix="rustwatch-rss-") as tmp:
        tmp = Path(tmp)
        setup_django(tmp / "var", config)
        from inspection.models import Photo
        from inspection.services.voc_io import import_voc

        src = synthetic_copies(tmp / "src", args.photos)
        import_voc(src, inspection_name="synthetic")
        photos = Photo.objects.count()
        pixels = sum(p.width * p.height for p in Photo.objects.only("width", "height"))
        before = peak_rss_mib()
        row = timed_run(f"{photos} photos")
        after = peak_rss_mib()
    decoded = pixels * 3 / 2**20
    print("| photos | decoded size if held in RAM MiB | peak RSS before run MiB | peak RSS MiB |")
    print("|---|---|---|---|")
    print(f"| {photos} | {decoded:.0f} | {before:.0f} | {after:.0f} |")
    print(f"run wall {row['wall_s']:.0f} s, timings {row['timings']}")
    print(f"config: {json.dumps(config)}")
    print(
        f"command: .venv/bin/python benchmarks/loop.py rss --photos {args.photos} "
        f"--config '{args.config or ''}'"
    )


SECTIONS = {"train": section_train, "rss": section_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--config", default="", help="RUSTWATCH_TRAIN_CONFIG JSON")
    parser.add_argument("--photos", type=int, default=1000, help="rss: how many photos")
    args = parser.parse_args()
    SECTIONS[args.section](args)


if __name__ == "__main__":
    main()
