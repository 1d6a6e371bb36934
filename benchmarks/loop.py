"""The learning loop, timed on this machine. One section per part of the loop.

train    wall time from "train" to "new suggestions on all unlabelled photos" for the
         seed set (../shared/data/corrosion-seed): import, then a run as the `train`
         worker does it (snapshot, both models, candidate and deployed evaluated on the
         same val photos, gate, deploy) and the re-scoring the deploy starts, with the
         run defaults (RUSTWATCH_TRAIN_DEFAULTS: detector 256 px, 24 epochs). Run twice:
         the second run evaluates against the first (a real gate), reuses the embedding
         cache (the classifier's warm start) and starts its detector from the first's
         (RUSTWATCH_WARM_START, 12 epochs); --scratch-too adds a third without the detector
         warm start. Prints each run's log lines and epochs as they happen, a per-phase
         table and the CPU seconds (the work, whatever the machine's load). Goal: < 5 min.
rss      peak resident memory of one training run on 1,000 photos (resized copies of
         the seed photos with their boxes scaled), to show that training streams from
         files instead of decoding the data set into memory.
scoring  photos/s of classifier + detector together on the seed photos, the calls a
         `predict` worker makes (`services.suggestions.predict_files`: decode, classifier
         embedding + head, detector), without the embedding cache (new photos), with the
         detector network in Keras (the baseline), in the default runtime (`ml.serving`:
         LiteRT on a CPU), and in LiteRT at other --batches (photos per network call).
         Wall ms/photo and CPU ms/photo: the work, whatever the load (photos/CPU-s is what
         one core free of other work would score, threads or not). Models: ml defaults, the
         classifier head fitted on the seed, the detector with ImageNet backbone weights and
         untrained heads (its cost does not depend on what it learnt). Goal: >= 10/s.
rerank   re-rank the queue for 100,000 unlabelled photos with cached scores
         (`services.queue.rerank_queue`), then one `queue_next`. Goal: < 10 s.
predict  POST /api/v1/predict p50/p95 with a warm worker: a real gunicorn (2 processes)
         and a real Celery `predict` worker (prefork, 1 process) on the filesystem broker,
         a seed photo per request as the raw body.

train and rss run in this one process (Celery eager, a throw-away SQLite and media
folder), so the figures are the work itself, without broker latency; predict starts
real processes on the same throw-away folder.

    .venv/bin/python benchmarks/loop.py train
    .venv/bin/python benchmarks/loop.py train --config '{"detector": {"epochs": 10}}'
    .venv/bin/python benchmarks/loop.py rss --photos 1000
    .venv/bin/python benchmarks/loop.py scoring --batches 1,2,4
    .venv/bin/python benchmarks/loop.py rerank --rerank-photos 100000
    .venv/bin/python benchmarks/loop.py predict --requests 50
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEED = ROOT.parent / "shared" / "data" / "corrosion-seed"
WEIGHTS = ROOT.parent / "shared" / "weights"

from benchmarks.speed import ensure_keras_home  # noqa: E402


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


def cpu_s() -> float:
    """CPU seconds of this process, all threads (user + system): the work, whatever the load."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


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


def timed_run(label: str, **options) -> dict:
    from inspection.models import Job, Photo, TrainingRun
    from inspection.services.training import start_run

    print(f"\n[{time.strftime('%H:%M:%S')}] {label}: run started", flush=True)
    t0, c0 = time.perf_counter(), cpu_s()
    run = start_run(user=None, trigger=TrainingRun.Trigger.MANUAL, **options)  # eager: here
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    run = TrainingRun.objects.select_related("job").get(pk=run.pk)
    if run.job.state != Job.State.SUCCEEDED:
        raise SystemExit(f"{label}: run {run.job.state}: {run.job.error}")
    unlabelled = Photo.objects.filter(verdict="unknown", verified=False)
    scored = unlabelled.filter(suggestion_state="ready").count()
    row = {
        "run": label,
        "wall_s": wall,
        "cpu_s": cpu,
        "timings": run.metrics.get("timings", {}),
        "warm_start": run.metrics.get("warm_start", {}),
        "gates": {v.kind: v.gate for v in run.versions.all()},
        "val": run.metrics.get("val", {}),
        "unlabelled": unlabelled.count(),
        "scored": scored,
    }
    print(f"[{time.strftime('%H:%M:%S')}] {label}: {json.dumps(row, default=str)}", flush=True)
    return row


TRAIN_PHASES = (  # (column, how it is got from a run's timings)
    ("snapshot", lambda t, w: t.get("snapshot_s")),
    ("classifier", lambda t, w: t.get("classifier_s")),
    ("detector", lambda t, w: t.get("detector_s")),
    ("evaluate both", lambda t, w: t.get("evaluate_s")),
    ("gate + register", lambda t, w: t.get("register_s")),
    # the rest of the train phase: the candidate's own val scoring, saving, loading
    (
        "train other",
        lambda t, w: t.get("train_s", 0) - t.get("classifier_s", 0) - t.get("detector_s", 0),
    ),
    ("deploy + re-score", lambda t, w: w - t.get("total_s", w)),
)


def section_train(args: argparse.Namespace) -> None:
    import logging

    config = json.loads(args.config or "{}")
    with tempfile.TemporaryDirectory(prefix="rustwatch-loop-") as tmp:
        setup_django(Path(tmp), config)
        # progress: the run's log lines and the detector's epochs, as a worker logs them
        for name in ("inspection.services.jobs", "inspection.services.training"):
            logging.getLogger(name).setLevel(logging.INFO)
        from django.conf import settings

        from inspection.services.voc_io import import_voc

        t = time.perf_counter()
        report = import_voc(SEED, inspection_name="seed")
        import_s = time.perf_counter() - t
        held = hold_out_unlabelled()
        print(
            f"seed import: {report.as_dict().get('photos_created', '?')} photos in "
            f"{import_s:.1f} s; {held} made unlabelled for scoring; warm start "
            f"{settings.RUSTWATCH_WARM_START} ({settings.RUSTWATCH_WARM_START_EPOCHS} epochs); "
            f"run config {json.dumps(settings.RUSTWATCH_TRAIN_CONFIG)}",
            flush=True,
        )
        rows = [timed_run("first (no model deployed)")]
        rows.append(timed_run("second (gate vs first, warm)"))
        if args.scratch_too:
            rows.append(timed_run("third (gate vs second, scratch)", warm_start=False))
    print()
    head = [name for name, _ in TRAIN_PHASES]
    print(
        "| run | " + " | ".join(f"{h} s" for h in head) + " | train->suggestions s | CPU s | gate |"
    )
    print("|---|" + "---|" * (len(head) + 3))
    for r in rows:
        t, w = r["timings"], r["wall_s"]
        cells = [get(t, w) for _, get in TRAIN_PHASES]
        gates = ", ".join(f"{k} {v}" for k, v in sorted(r["gates"].items()))
        print(
            f"| {r['run']} | "
            + " | ".join("–" if c is None else f"{c:.1f}" for c in cells)
            + f" | **{w:.1f}** | {r['cpu_s']:.0f} | {gates} |"
        )
    print()
    for r in rows:
        clf, det = r["val"].get("classifier", {}), r["val"].get("detector", {})
        print(
            f"- {r['run']}: val accuracy {clf.get('accuracy', float('nan')):.3f}, ROC-AUC "
            f"{clf.get('roc_auc') or float('nan'):.3f}, detector AP50 "
            f"{det.get('AP50', float('nan')):.3f}; scored {r['scored']}/{r['unlabelled']}; "
            f"start: {r['warm_start']}"
        )
    load = os.getloadavg()
    print(
        f"\npeak RSS {peak_rss_mib():.0f} MiB; load average {load[0]:.1f} {load[1]:.1f} "
        f"{load[2]:.1f}; goal: < 300 s train->suggestions"
    )
    extra = " --scratch-too" if args.scratch_too else ""
    print(
        f"command: .venv/bin/python benchmarks/loop.py train --config '{args.config or ''}'{extra}"
    )


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


# ------------------------------------------------------------------ serving (engineer serve)

SCORING_GOAL = 10.0  # photos/s, classifier + detector (issue 9)
RERANK_GOAL = 10.0  # seconds for 100,000 photos


def table(title: str, head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [f"\n{title}\n"]
    for r in [head, ["-" * w for w in widths], *rows]:
        lines.append(
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        )
    return "\n".join(lines)


def seed_photos() -> list[Path]:
    return sorted((SEED / "classification").glob("*/*.jpg"))


def seed_models(out: Path):
    """An artifact folder with a seed-fitted classifier and a default detector (untrained heads)."""
    from ml.artifacts import save_artifact
    from ml.classifier import ClassifierConfig, RustClassifier
    from ml.dataset import Photo as DPhoto
    from ml.dataset import sha256_file
    from ml.detector import DetectorConfig, RustDetector
    from ml.detector.interface import build_model
    from ml.embeddings import EmbeddingCache

    paths = seed_photos()
    photos = [
        DPhoto(
            id=p.stem,
            path=p,
            sha256=sha256_file(p),
            label=int(p.parent.name == "rust"),
            group=p.stem,
        )
        for p in paths
    ]
    # predict cost does not depend on how many augmented views the head was fitted on
    clf = RustClassifier(ClassifierConfig(n_aug=1)).fit(
        photos, cache=EmbeddingCache(out.parent / "emb")
    )
    config = DetectorConfig()
    det = RustDetector(build_model(config, weights="imagenet"), config)
    return save_artifact(out, {"note": "benchmark models"}, classifier=clf, detector=det)


def bench_scoring(args, work: Path) -> tuple[str, dict]:
    """The Keras baseline, then the default runtime (ml.serving), at the config's
    predict_batch; the other batches in LiteRT. The same photos, models and process."""
    from ml.classifier import RustClassifier
    from ml.litert import litert_threads
    from ml.serving import detector_runtime, load_detector

    art = seed_models(work / "models")
    paths = seed_photos()[: args.photos]
    clf = RustClassifier.load(art / "classifier")
    default = detector_runtime()
    config_batch = load_detector(art / "detector", runtime="keras").config.predict_batch
    runs = [("keras", config_batch, "Keras (baseline)")]
    runs.append((default, config_batch, f"{default} (the default here)"))
    runs += [("litert", b, "litert") for b in args.batches if b != config_batch]
    results: dict = {"photos": len(paths), "default": default, "threads": litert_threads()}
    rows, keras_s = [], None
    for runtime, batch, label in runs:
        det = load_detector(art / "detector", runtime=runtime, cache_dir=work / "lite")
        det.config.predict_batch = batch  # a serving setting: not part of the weights
        warm = paths[: 2 * batch + 1]  # a full and a partial batch
        clf.predict_embeddings(clf.embed(warm))  # trace / plan both before timing
        det.predict(warm)
        t0, c0 = time.perf_counter(), cpu_s()
        x = clf.embed(paths)  # no cache: new photos
        clf.predict_embeddings(x)
        t1 = time.perf_counter()
        det.predict(paths, score_threshold=0.05)
        t2, c2 = time.perf_counter(), cpu_s()
        n = len(paths)
        cls_ms, det_ms = 1000 * (t1 - t0) / n, 1000 * (t2 - t1) / n
        per_s = n / (t2 - t0)
        keras_s = keras_s or per_s
        results[f"{runtime}-b{batch}"] = {
            "classifier_ms": cls_ms,
            "detector_ms": det_ms,
            "photos_per_s": per_s,
            "cpu_ms": 1000 * (c2 - c0) / n,
        }
        rows.append(
            [
                label,
                str(batch),
                f"{cls_ms:.1f}",
                f"{det_ms:.1f}",
                f"{cls_ms + det_ms:.1f}",
                f"{per_s:.1f}",
                f"{1000 * (c2 - c0) / n:.0f}",
                f"{n / (c2 - c0):.1f}",
                f"{per_s / keras_s:.2f}x",
            ]
        )
    goal = [f"<= {1000 / SCORING_GOAL:.0f}", f">= {SCORING_GOAL:.0f}"]
    rows.append(["goal (issue 9)", "", "", "", *goal, "", "", ""])
    load = os.getloadavg()
    return (
        table(
            f"scoring, classifier + detector, {len(paths)} seed photos, no embedding cache; "
            f"LiteRT threads {litert_threads()} (RUSTWATCH_LITERT_THREADS); load average "
            f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
            [
                "detector network",
                "predict_batch",
                "classifier ms/photo",
                "detector ms/photo",
                "total ms/photo",
                "photos/s",
                "CPU ms/photo",
                "photos/CPU-s",
                "photos/s vs Keras",
            ],
            rows,
        ),
        results,
    )


def bench_rerank(args, work: Path) -> tuple[str, dict]:
    from django.contrib.auth.models import Group, User

    from inspection.models import Asset, Inspection, Photo
    from inspection.services.queue import queue_next, rerank_queue

    n = args.rerank_photos
    asset, _ = Asset.objects.get_or_create(name="bench")
    inspection, _ = Inspection.objects.get_or_create(asset=asset, name="rerank")
    Photo.objects.filter(inspection=inspection).delete()
    rng = np.random.default_rng(0)
    prob = rng.uniform(0, 1, n)
    unc = rng.uniform(0, 1, n)
    top = rng.uniform(0, 1, n)
    emb = rng.normal(0, 1, (n, 64)).astype(np.float16)
    t = time.perf_counter()
    for start in range(0, n, 5000):
        Photo.objects.bulk_create(
            Photo(
                inspection=inspection,
                image=f"photos/bench/{i}.jpg",
                sha256=f"{i:064x}",
                phash=f"{i:016x}",
                width=640,
                height=480,
                content_type="image/jpeg",
                score=float(prob[i]),
                detector_uncertainty=float(unc[i]) if i % 10 else None,
                detector_max_score=float(top[i]) if i % 10 else None,
                embedding=emb[i].tobytes(),
            )
            for i in range(start, min(n, start + 5000))
        )
    fill_s = time.perf_counter() - t
    t = time.perf_counter()
    changed = rerank_queue()
    rerank_s = time.perf_counter() - t
    user = User.objects.filter(username="bench").first() or User.objects.create_user("bench")
    user.groups.add(Group.objects.get(name="inspector"))
    t = time.perf_counter()
    item = queue_next(user=user)
    next_s = time.perf_counter() - t
    assert item is not None and changed == n
    vendor = __import__("django.db", fromlist=["connection"]).connection.vendor
    rows = [
        [f"{vendor}, {n:,} photos", f"{rerank_s:.2f}", f"{1000 * next_s:.0f}", f"{fill_s:.0f}"],
        ["goal (issue 9)", f"< {RERANK_GOAL:.0f}", "", ""],
    ]
    Photo.objects.filter(inspection=inspection).delete()
    return (
        table(
            "queue re-rank from cached scores",
            ["", "re-rank s", "then queue_next ms", "(rows written in s)"],
            rows,
        ),
        {"photos": n, "rerank_s": rerank_s, "next_ms": 1000 * next_s, "vendor": vendor},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.5)


def bench_predict(args, work: Path, env: dict[str, str]) -> tuple[str, dict]:
    import requests
    from django.conf import settings
    from django.contrib.auth.models import Group, User

    from inspection.models import DeployedModel, ModelVersion
    from inspection.services.tokens import issue_token
    from ml.serving import detector_runtime

    art = seed_models(work / "predict-models")
    name = "models/bench"
    target = Path(settings.MEDIA_ROOT) / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(art, target)
    for kind in ("classifier", "detector"):
        version, _ = ModelVersion.objects.update_or_create(
            name=f"{kind}-bench", defaults={"kind": kind, "artifact": name}
        )
        DeployedModel.objects.update_or_create(kind=kind, defaults={"version": version})
    user = User.objects.filter(username="drone").first() or User.objects.create_user("drone")
    user.groups.add(Group.objects.get(name="integration"))
    _, key = issue_token(user=user, issued_by=user)

    port = _free_port()
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "inspection", "worker", "--queues",
             "predict,default", "--pool", "prefork", "--concurrency", "1", "--without-mingle",
             "--without-gossip", "--loglevel", "WARNING"],
            cwd=ROOT, env=env, stdout=open(logs / "worker.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "inspection.wsgi:application", "--bind",
             f"127.0.0.1:{port}", "--workers", "2", "--timeout", "120"],
            cwd=ROOT, env=env, stdout=open(logs / "gunicorn.log", "wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        ),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/v1/predict"
    headers = {"Authorization": f"Token {key}", "Content-Type": "image/jpeg"}
    photos = seed_photos()
    try:

        def web_up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok
            except requests.RequestException:
                return False

        _wait(web_up, 120, "gunicorn")

        def warm() -> bool:  # the worker loads the models on its first task
            r = requests.post(url, data=photos[0].read_bytes(), headers=headers, timeout=120)
            return r.status_code == 200

        _wait(warm, 600, "a warm worker")
        times, codes = [], []
        for i in range(args.requests):
            body = photos[i % len(photos)].read_bytes()
            t = time.perf_counter()
            r = requests.post(url, data=body, headers=headers, timeout=120)
            times.append(time.perf_counter() - t)
            codes.append(r.status_code)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    ms = sorted(1000 * t for t in times)
    p50 = statistics.median(ms)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    ok = codes.count(200)
    return (
        table(
            f"POST /api/v1/predict, raw JPEG body, {len(ms)} requests in a row, warm worker; "
            f"RUSTWATCH_PREDICT_POLL_S {settings.RUSTWATCH_PREDICT_POLL_S}, detector network "
            f"{detector_runtime()}",
            ["", "p50 ms", "p95 ms", "max ms", "200 answers"],
            [
                [
                    "gunicorn x2 + prefork worker x1",
                    f"{p50:.0f}",
                    f"{p95:.0f}",
                    f"{ms[-1]:.0f}",
                    f"{ok}/{len(ms)}",
                ]
            ],
        ),  # fmt: skip
        {"p50_ms": p50, "p95_ms": p95, "max_ms": ms[-1], "ok": ok, "requests": len(ms)},
    )


def worker_env(var: Path) -> dict[str, str]:
    """The environment of real web and worker processes: this data folder, not eager."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "inspection.settings",
        "RUSTWATCH_VAR": str(var),
        "CELERY_BROKER_URL": "filesystem://",
        "PYTHONPATH": str(ROOT),
        "RUSTWATCH_PREDICT_RATE": "1000000/min",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


def section_scoring(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rustwatch-scoring-") as tmp:
        ensure_keras_home()
        text, _ = bench_scoring(args, Path(tmp))
    print(text)
    batches = ",".join(str(b) for b in args.batches)
    print(f"command: .venv/bin/python benchmarks/loop.py scoring --batches {batches}")


def section_rerank(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rustwatch-rerank-") as tmp:
        setup_django(Path(tmp), {})
        text, _ = bench_rerank(args, Path(tmp))
    print(text)
    print(
        f"command: .venv/bin/python benchmarks/loop.py rerank --rerank-photos {args.rerank_photos}"
    )


def section_predict(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rustwatch-predict-") as tmp:
        setup_django(Path(tmp), {})
        text, _ = bench_predict(args, Path(tmp), worker_env(Path(tmp)))
    print(text)
    print(f"command: .venv/bin/python benchmarks/loop.py predict --requests {args.requests}")


SECTIONS = {
    "train": section_train,
    "rss": section_rss,
    "scoring": section_scoring,
    "rerank": section_rerank,
    "predict": section_predict,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--config", default="", help="RUSTWATCH_TRAIN_CONFIG JSON")
    parser.add_argument(
        "--scratch-too", action="store_true", help="train: a third run without warm start"
    )
    parser.add_argument("--photos", type=int, default=1000, help="rss: how many photos")
    parser.add_argument("--rerank-photos", type=int, default=100_000, help="rerank: queue size")
    parser.add_argument("--requests", type=int, default=50, help="predict: requests timed")
    parser.add_argument(
        "--batches",
        type=lambda v: [int(b) for b in v.split(",")],
        default=[1, 2, 4],
        help="scoring: predict_batch values timed in LiteRT besides the config's",
    )
    args = parser.parse_args()
    SECTIONS[args.section](args)


if __name__ == "__main__":
    main()
