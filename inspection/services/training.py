"""Training runs: snapshot -> train both models -> evaluate candidate and deployed -> gate.

`start_run` (web process) makes a `train` job + a TrainingRun and queues it;
`execute_run` (the `train` worker) does the work in steps, reporting progress
(phase; model, epoch and loss live, from `ml.training.train`'s `on_progress` hook)
and stopping at a cancel (its `should_stop` hook, asked between batches):

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
the same one the scoring side fills) across runs, so only new photos are embedded; the
detector starts from the deployed detector's weights when it has the same architecture
(`warm_start_detector`, RUSTWATCH_WARM_START), else from ImageNet.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction

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
    warm_start: bool | None = None,
) -> TrainingRun:
    """Queue a training run (it waits while another runs). Returns the run.

    `warm_start`: start the detector from the deployed one (None: RUSTWATCH_WARM_START)."""
    from inspection.tasks.training import train_run

    if trigger not in TrainingRun.Trigger.values:
        raise DomainError(f"Unknown trigger {trigger!r}.")
    with transaction.atomic():
        job = jobs.create_job(kind=Job.Kind.TRAIN, params={"trigger": trigger}, user=user)
        run = TrainingRun.objects.create(
            job=job,
            trigger=trigger,
            config={"skip_detector": bool(skip_detector), "warm_start": warm_start},
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

    base, defaults = settings.RUSTWATCH_TRAIN_CONFIG, settings.RUSTWATCH_TRAIN_DEFAULTS
    cls = ClassifierConfig.from_dict(
        {**defaults.get("classifier", {}), **base.get("classifier", {})}
    )
    det = DetectorConfig.from_dict({**defaults.get("detector", {}), **base.get("detector", {})})
    return cls, det


def execute_run(job: Job) -> dict[str, Any]:
    """Do a claimed `train` job's run; returns the job result. Raises on failure
    (JobCancelled when a person cancelled it)."""
    from ml.hooks import TrainingCancelled

    try:
        return _execute_run(job)
    except TrainingCancelled as exc:
        raise jobs.JobCancelled(f"job {job.pk} cancelled: {exc}") from exc


def _execute_run(job: Job) -> dict[str, Any]:
    run = TrainingRun.objects.select_related("job").get(job=job)
    work = run_dir(run)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    total = len(STEPS)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    hooks = _RunHooks(job)
    with jobs.heartbeat(job):
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
        init_detector, det_cfg, det_start = (None, det_cfg, "none")
        if not skip_detector:
            init_detector, det_cfg, det_start = warm_start_detector(run, det_cfg)
            jobs.append_log(job, f"detector starts from {det_start}")
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
            on_progress=hooks.on_progress,
            should_stop=hooks.should_stop,
            init_detector=init_detector,
        )
        timings["train_s"] = round(time.perf_counter() - t, 2)
        manifest = json.loads((artifact_dir / "manifest.json").read_text())
        for key in ("classifier_s", "detector_s"):  # the parts of train_s
            if key in manifest.get("timings", {}):
                timings[key] = manifest["timings"][key]
        jobs.append_log(
            job, f"trained in {timings['train_s']:.0f} s; {hooks.embedded} photos embedded anew"
        )

        jobs.report_progress(job, step=2, phase="evaluate")
        jobs.append_log(job, "evaluating the candidate and the deployed models on val")
        t = time.perf_counter()
        from ml.artifacts import load_artifact

        candidate = load_artifact(artifact_dir)
        cand_eval = json_safe(evaluate(candidate, dataset, part="val", cache=cache, progress=False))
        val_scores = _val_scores(candidate, dataset, cache)
        deployed = registry.deployed_versions()
        jobs.check_cancel(job)
        dep_eval = json_safe(_evaluate_deployed(deployed, dataset, cache))
        timings["evaluate_s"] = round(time.perf_counter() - t, 2)

        # The last look for a cancel: from here versions are registered and the gate may
        # move the pointer, so the run finishes.
        jobs.report_progress(job, step=3, phase="register")
        t = time.perf_counter()
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
        timings["register_s"] = round(time.perf_counter() - t, 2)
        timings["total_s"] = round(time.perf_counter() - started, 2)
        run.metrics = {
            "val": cand_eval,
            "deployed_val": dep_eval,
            "timings": timings,
            "warm_start": {
                "classifier": f"embedding cache: {hooks.embedded} photos embedded anew",
                "detector": det_start,
            },
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


def warm_start_detector(run: TrainingRun, det_cfg: Any) -> tuple[Path | None, Any, str]:
    """Where this run's detector starts: (init folder or None, config, words for the log).

    From the deployed detector's weights when the run (or RUSTWATCH_WARM_START) asks for
    it and that detector has this config's architecture, for RUSTWATCH_WARM_START_EPOCHS
    epochs (at most the config's); otherwise from ImageNet, and the words say why.
    """
    from dataclasses import replace

    from ml.detector import warm_start_mismatch

    wanted = run.config.get("warm_start")
    if not (settings.RUSTWATCH_WARM_START if wanted is None else wanted):
        return None, det_cfg, "ImageNet (warm start off)"
    deployed = registry.deployed_versions().get(ModelKind.DETECTOR)
    if deployed is None:
        return None, det_cfg, "ImageNet (no detector deployed yet)"
    folder = snapshots.materialize(deployed.artifact) / KIND_FOLDERS[ModelKind.DETECTOR]
    reason = warm_start_mismatch(det_cfg, folder)
    if reason:
        log.info("run %s: no warm start from %s: %s", run.pk, deployed.name, reason)
        return None, det_cfg, f"ImageNet (not {deployed.name}: {reason})"
    epochs = min(det_cfg.epochs, settings.RUSTWATCH_WARM_START_EPOCHS or det_cfg.epochs)
    return folder, replace(det_cfg, epochs=epochs), f"{deployed.name} ({epochs} epochs)"


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


class _RunHooks:
    """`ml.training.train`'s hooks for one run: live progress into the job, cancel.

    Both run on the training thread between batches (ml.hooks): progress writes the
    model being trained, epoch of epochs and loss (detector) or photos embedded
    (classifier) into the job's progress and refreshes its heartbeat; `should_stop`
    asks the database at most every CANCEL_CHECK_S whether the job was cancelled or is
    no longer running (failed as lost by a reaper while a redelivery ran it), so such a
    run stops at its next batch with ml.hooks.TrainingCancelled.
    """

    CANCEL_CHECK_S = 1.0

    def __init__(self, job: Job) -> None:
        self.job = job
        self._asked = 0.0
        self.embedded = 0  # photos the classifier embedded (not found in the cache)

    def on_progress(self, phase: str, step: int, total: int, loss: float | None) -> None:
        if phase == "classifier":
            details: dict[str, Any] = {"model": phase, "embedded": step, "to_embed": total}
            if step >= total:
                self.embedded += total
        else:
            details = {"model": phase, "epoch": step, "epochs": total}
            if loss is not None:
                details["loss"] = round(loss, 4)
            log.info("job %s: %s epoch %d/%d, loss %s", self.job.pk, phase, step, total, loss)
        try:
            jobs.update_progress(self.job, **details)
        except DatabaseError as exc:  # a busy database costs one progress line, not the run
            log.warning("progress of job %s: %s", self.job.pk, exc)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self._asked < self.CANCEL_CHECK_S:
            return False
        self._asked = now
        try:
            return jobs.stop_reason(self.job) is not None
        except DatabaseError as exc:  # a busy database costs one look, not the run
            log.warning("cancel check of job %s: %s", self.job.pk, exc)
            return False
