"""Training runs: snapshot -> train both models -> evaluate candidate and deployed -> gate.

`start_run` (web process) makes a `train` job + a TrainingRun and queues it;
`execute_run` (the `train` worker) does the work in steps, reporting progress
(phase, epoch and loss live, read from the run's TensorBoard events) and
stopping at a cancel:

1. snapshot: the labelled photos frozen (services/snapshots.py)
2. train: `ml.training.train` into the run's scratch folder; the artifact is
   committed there atomically by `ml.artifacts`
3. evaluate: the candidate AND the deployed versions on the snapshot's
   validation photos, here, in this run
4. register: one ModelVersion per kind, its folder written to storage under
   `models/<name>/` before the row exists (the row is the commit); the gate
   decides; a passing (or first) version is deployed (services/registry.py)

A worker killed mid-run leaves the job running with a stale heartbeat: the
next train worker to start, or the next attempt of the task, fails it
(`inspection.services.jobs.reap_lost_jobs`) and `_cleanup_run` removes the
scratch folder and any half-written storage folders. The deployed pointer is
only ever moved in step 4, so it is untouched.

Warm start: the classifier reuses the embedding cache ($RUSTWATCH_EMBEDDING_CACHE,
the same one the scoring side fills) across runs, so only new photos are embedded.
The detector starts from ImageNet weights each run (ml.training has no way to start
from a deployed detector yet).
"""

from __future__ import annotations

import ctypes
import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction
from django.utils import timezone

from inspection.errors import DomainError
from inspection.models import Job, ModelKind, ModelVersion, TrainingRun
from inspection.services import jobs, registry, snapshots
from ml.json_safe import json_safe

log = logging.getLogger(__name__)

STEPS = ("snapshot", "train", "evaluate", "register")
KIND_FOLDERS = {ModelKind.CLASSIFIER: "classifier", ModelKind.DETECTOR: "detector"}


class TrainingFailed(DomainError):
    status = 400
    code = "training_failed"


def run_dir(run: TrainingRun) -> Path:
    """The run's local scratch folder on the worker."""
    return Path(settings.RUSTWATCH_WORK_DIR) / "runs" / f"run-{run.pk}"


def version_name(kind: str, run: TrainingRun) -> str:
    return f"{kind}-{run.pk}"


def active_run() -> TrainingRun | None:
    """The queued or running run, if any (the oldest first)."""
    return (
        TrainingRun.objects.select_related("job")
        .filter(job__state__in=[Job.State.QUEUED, Job.State.RUNNING])
        .order_by("created_at", "id")
        .first()
    )


def start_run(
    *,
    user: AbstractBaseUser | None,
    trigger: str = TrainingRun.Trigger.MANUAL,
    skip_detector: bool = False,
) -> TrainingRun:
    """Queue a training run (it waits while another runs). Returns the run."""
    from inspection.tasks.training import train_run

    if trigger not in TrainingRun.Trigger.values:
        raise DomainError(f"Unknown trigger {trigger!r}.")
    with transaction.atomic():
        job = jobs.create_job(kind=Job.Kind.TRAIN, params={"trigger": trigger}, user=user)
        run = TrainingRun.objects.create(
            job=job,
            trigger=trigger,
            config={"skip_detector": bool(skip_detector)},
            labels_at_start=snapshots.labelled_count(),
        )
        job.params = {**job.params, "run_id": run.pk}
        job.save(update_fields=["params"])
        jobs.enqueue_on_commit(job, train_run)
    log.info("training run %s queued (%s)", run.pk, trigger)
    return run


def ml_configs(run: TrainingRun) -> tuple[Any, Any]:
    """The ClassifierConfig and DetectorConfig of a run (settings, then the run's own)."""
    from ml.classifier import ClassifierConfig
    from ml.detector import DetectorConfig

    base = settings.RUSTWATCH_TRAIN_CONFIG
    cls = ClassifierConfig.from_dict({**base.get("classifier", {})})
    det = DetectorConfig.from_dict({**base.get("detector", {})})
    return cls, det


def execute_run(job: Job) -> dict[str, Any]:
    """Do a claimed `train` job's run; returns the job result. Raises on failure."""
    run = TrainingRun.objects.select_related("job").get(job=job)
    work = run_dir(run)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    total = len(STEPS)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with _TrainingWatch(job, work):
        jobs.report_progress(job, step=0, total=total, phase="snapshot")
        jobs.append_log(job, "freezing the labelled photos")
        t = time.perf_counter()
        snapshot = snapshots.create_snapshot()
        run.snapshot = snapshot
        run.save(update_fields=["snapshot"])
        timings["snapshot_s"] = round(time.perf_counter() - t, 2)
        jobs.append_log(
            job,
            f"snapshot {snapshot.pk}: {snapshot.photo_count} photos, {snapshot.box_count} "
            f"boxes, splits {snapshot.splits}",
        )

        from ml.dataset import load_dataset
        from ml.embeddings import EmbeddingCache
        from ml.training import evaluate, train

        dataset = load_dataset(snapshots.materialize(snapshot.path))
        cache = EmbeddingCache()  # $RUSTWATCH_EMBEDDING_CACHE, shared with the scoring side
        cls_cfg, det_cfg = ml_configs(run)
        skip_detector = bool(run.config.get("skip_detector")) or not any(
            p.boxed for p in dataset.subset("train")
        )
        jobs.report_progress(job, step=1, phase="train")
        jobs.append_log(job, f"training (detector: {'no' if skip_detector else 'yes'})")
        t = time.perf_counter()
        artifact_dir = train(
            dataset,
            work / "artifact",
            classifier_config=cls_cfg,
            detector_config=det_cfg,
            skip_detector=skip_detector,
            cache=cache,
            progress=False,
        )
        timings["train_s"] = round(time.perf_counter() - t, 2)

        jobs.report_progress(job, step=2, phase="evaluate")
        jobs.append_log(job, "evaluating the candidate and the deployed models on val")
        t = time.perf_counter()
        from ml.artifacts import load_artifact

        candidate = load_artifact(artifact_dir)
        cand_eval = json_safe(evaluate(candidate, dataset, part="val", cache=cache, progress=False))
        val_scores = _val_scores(candidate, dataset, cache)
        deployed = registry.deployed_versions()
        dep_eval = json_safe(_evaluate_deployed(deployed, dataset, cache))
        timings["evaluate_s"] = round(time.perf_counter() - t, 2)

    # Past this point the run is not cancelled any more: versions are registered and the
    # gate may move the pointer, so the watch (which injects a cancel) has stopped.
    jobs.check_cancel(job)
    with jobs.heartbeat(job):
        jobs.report_progress(job, step=3, phase="register")
        versions = []
        for kind, sub in KIND_FOLDERS.items():
            if not (artifact_dir / sub).is_dir():
                continue
            old = deployed.get(kind)
            # a deployed model that could not be scored here (no val photos of the kind)
            # is still deployed: {} (nothing to compare), never None (first of its kind)
            decision, report = registry.judge(
                kind, cand_eval.get(kind), (dep_eval.get(kind) or {}) if old is not None else None
            )
            report.update(
                {
                    "deployed_version": old.name if old else None,
                    "val_photos": len(dataset.subset("val")),
                    "candidate": cand_eval.get(kind),
                    "deployed": dep_eval.get(kind) if old is not None else None,
                }
            )
            version = _register(
                run, kind, artifact_dir, cand_eval.get(kind) or {}, decision, report, val_scores
            )
            versions.append(version)
            jobs.append_log(job, f"{version.name}: gate {decision}")
        timings["total_s"] = round(time.perf_counter() - started, 2)
        run.metrics = {
            "val": cand_eval,
            "deployed_val": dep_eval,
            "timings": timings,
            "warm_start": {"classifier": "embedding cache", "detector": "imagenet"},
        }
        run.save(update_fields=["metrics"])
        passed = [
            v for v in versions if v.gate in (ModelVersion.Gate.FIRST, ModelVersion.Gate.PASSED)
        ]
        with transaction.atomic():  # both pointers move together; one re-scoring after
            for version in passed:
                registry.deploy_version(version=version, user=None, automatic=True, rescore=False)
            if passed:
                kinds = " and ".join(v.kind for v in passed)
                transaction.on_commit(lambda: registry.rescore_after_deploy(kinds), robust=True)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "run_id": run.pk,
        "snapshot_id": snapshot.pk,
        "versions": {v.kind: {"id": v.pk, "name": v.name, "gate": v.gate} for v in versions},
        "timings": timings,
    }


def _evaluate_deployed(deployed: dict[str, ModelVersion], dataset, cache) -> dict:
    """The deployed versions on the same validation photos ({} when none is deployed)."""
    if not deployed:
        return {}
    from ml.artifacts import Artifact, load_artifact
    from ml.training import evaluate

    parts: dict[str, Any] = {}
    for kind, version in deployed.items():
        loaded = load_artifact(
            snapshots.materialize(version.artifact), detector=kind == ModelKind.DETECTOR
        )
        parts[kind] = loaded.classifier if kind == ModelKind.CLASSIFIER else loaded.detector
    combined = Artifact(
        path=Path("."),
        manifest={},
        classifier=parts.get(ModelKind.CLASSIFIER),
        detector=parts.get(ModelKind.DETECTOR),
    )
    return evaluate(combined, dataset, part="val", cache=cache, progress=False)


def _val_scores(candidate, dataset, cache) -> dict:
    """The candidate classifier's val scores, kept in the manifest for its plots."""
    val = dataset.labelled(dataset.subset("val"))
    if candidate.classifier is None or not val:
        return {}
    prob = candidate.classifier.predict([p.path for p in val], [p.sha256 for p in val], cache)
    return {
        "classifier": {
            "ids": [p.id for p in val],
            "y": [int(p.label) for p in val],
            "prob": [float(x) for x in prob],
        }
    }


def _register(
    run: TrainingRun,
    kind: str,
    artifact_dir: Path,
    metrics: dict,
    gate: str,
    report: dict,
    val_scores: dict,
) -> ModelVersion:
    """Write the kind's folder to storage, then the row that makes it a version."""
    name = version_name(kind, run)
    folder = run_dir(run) / "versions" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copytree(artifact_dir / KIND_FOLDERS[kind], folder / KIND_FOLDERS[kind])
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    manifest["kind"] = kind
    manifest["version"] = name
    manifest["gate"] = report
    if kind == ModelKind.CLASSIFIER:
        manifest["detector"] = None
        manifest["val_scores"] = val_scores
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    try:
        from inspection.services.plots import render_plots

        render_plots(kind, manifest, folder / "plots")
    except Exception:  # a plot is never worth a lost model
        log.exception("plots for %s failed", name)
    storage_name = f"models/{name}"
    snapshots.delete_folder(storage_name)  # a half-upload of an earlier attempt
    snapshots.upload_folder(folder, storage_name)
    return ModelVersion.objects.create(
        kind=kind,
        name=name,
        artifact=storage_name,
        run=run,
        snapshot=run.snapshot,
        metrics=metrics,
        gate=gate,
        gate_report=report,
    )


@jobs.on_job_lost(Job.Kind.TRAIN)
def cleanup_run(job: Job) -> None:
    """Remove what a dead or failed run left: scratch folder, half-written versions."""
    run = TrainingRun.objects.filter(job=job).first()
    if run is None:
        return
    shutil.rmtree(run_dir(run), ignore_errors=True)
    registered = set(ModelVersion.objects.filter(run=run).values_list("name", flat=True))
    for kind in KIND_FOLDERS:
        name = version_name(kind, run)
        if name not in registered:
            snapshots.delete_folder(f"models/{name}")


def labels_since_last_run() -> int:
    """New human labels since the latest run started (what the label trigger counts).

    Before the first run there is nothing to count from: the first run is started
    by a person or the nightly schedule, not by a bulk import of labels.
    """
    last = TrainingRun.objects.order_by("-created_at", "-id").first()
    return snapshots.labelled_count() - last.labels_at_start if last else 0


def maybe_start_label_run() -> TrainingRun | None:
    """Start a run when RUSTWATCH_TRAIN_AFTER_LABELS new labels arrived and none is queued."""
    threshold = settings.RUSTWATCH_TRAIN_AFTER_LABELS
    if threshold <= 0 or active_run() is not None:
        return None
    new = labels_since_last_run()
    if new < threshold:
        return None
    log.info("%d new labels since the last run (threshold %d): starting one", new, threshold)
    return start_run(user=None, trigger=TrainingRun.Trigger.LABELS)


# --- live progress and cancel while the ml library trains ------------------------------


class _TrainingWatch:
    """A thread beside the run: heartbeat, epoch and loss from TensorBoard, cancel.

    `ml.training.train` is one library call; between its own epochs this thread
    reads the newest `epoch_loss` from the run's TensorBoard files into the
    job's progress, and when a person cancels it raises JobCancelled in the
    training thread (delivered at its next Python step, e.g. the next batch).
    """

    def __init__(self, job: Job, work: Path) -> None:
        self.job, self.work = job, work
        self.stop = threading.Event()
        self.target = threading.get_ident()
        self.thread = threading.Thread(target=self._loop, name=f"run-{job.pk}-watch", daemon=True)
        self._seen: tuple[int, float] | None = None

    def __enter__(self) -> _TrainingWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        from django.db import connection

        every = max(1, min(settings.RUSTWATCH_JOB_HEARTBEAT_S, 5))
        try:
            while not self.stop.wait(every):
                try:
                    if self._beat():
                        return
                except DatabaseError as exc:  # busy database: try again at the next beat
                    log.warning("run watch for job %s: %s", self.job.pk, exc)
        finally:
            connection.close()

    def _beat(self) -> bool:
        """One look: heartbeat, live epoch/loss; True once a cancel was delivered."""
        fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
        epoch_loss = _latest_epoch_loss(self.work)
        if epoch_loss is not None and epoch_loss != self._seen:
            self._seen = epoch_loss
            progress = Job.objects.filter(pk=self.job.pk).values_list("progress", flat=True)
            current = dict(progress.first() or {})
            current.update({"epoch": epoch_loss[0] + 1, "loss": round(epoch_loss[1], 4)})
            fields["progress"] = current
        Job.objects.filter(pk=self.job.pk, state=Job.State.RUNNING).update(**fields)
        if Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.target), ctypes.py_object(jobs.JobCancelled)
            )
            return True
        return False


def _latest_epoch_loss(work: Path) -> tuple[int, float] | None:
    """(epoch, loss) last written by the detector's TensorBoard callback, if any."""
    files = sorted(work.glob("**/detector/train/events.out.tfevents*"))
    if not files:
        return None
    try:
        import tensorflow as tf

        latest = None
        for event in tf.compat.v1.train.summary_iterator(str(files[-1])):
            for value in event.summary.value:
                if value.tag == "epoch_loss":
                    latest = (int(event.step), float(tf.make_ndarray(value.tensor)))
        return latest
    except Exception:  # a file being written: try again at the next look
        return None
