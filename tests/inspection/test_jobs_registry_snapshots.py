"""Jobs, the gate, deploy/rollback and snapshots, without TensorFlow (fast)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from inspection.errors import Conflict
from inspection.models import Box, Deployment, Job, ModelVersion, Photo, Verdict
from inspection.services import jobs, registry, snapshots
from tests.loop_photos import add_photos

pytestmark = pytest.mark.django_db


# --- jobs ----------------------------------------------------------------------------


def test_claim_is_idempotent_by_job_id(supervisor):
    job = jobs.create_job(kind=Job.Kind.EXPORT, user=supervisor)
    first = jobs.claim_job(job.pk, worker="w1")
    assert first is not None and first.state == Job.State.RUNNING and first.attempts == 1
    # the same task handed to another worker while the first is alive: nothing happens
    assert jobs.claim_job(job.pk, worker="w2") is None
    jobs.succeed_job(first, {"file": "x"})
    # a redelivery after the job finished: nothing happens, the result stays
    assert jobs.claim_job(job.pk, worker="w1") is None
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.result == {"file": "x"}
    assert jobs.fail_job(job, "late") is False  # a finished job never changes state


def test_same_worker_redelivery_reruns_once_then_fails(supervisor):
    job = jobs.create_job(kind=Job.Kind.EXPORT, user=supervisor)
    assert jobs.claim_job(job.pk, worker="w1").attempts == 1
    # w1 died mid-job and got the task again: it may not be running it, so it runs again
    assert jobs.claim_job(job.pk, worker="w1").attempts == 2
    assert jobs.claim_job(job.pk, worker="w1") is None
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert "stopped during" in job.error and "attempt 2" in job.error


def test_exclusive_claim_waits_for_the_running_training(supervisor):
    a = jobs.create_job(kind=Job.Kind.TRAIN, user=supervisor)
    b = jobs.create_job(kind=Job.Kind.TRAIN, user=supervisor)
    assert jobs.claim_job(a.pk, worker="w1", exclusive=True) is not None
    with pytest.raises(jobs.Busy):
        jobs.claim_job(b.pk, worker="w2", exclusive=True)
    jobs.succeed_job(Job.objects.get(pk=a.pk))
    assert jobs.claim_job(b.pk, worker="w2", exclusive=True) is not None


def test_cancel_queued_at_once_running_at_next_step(supervisor, inspector):
    queued = jobs.create_job(kind=Job.Kind.EXPORT, user=inspector)
    with pytest.raises(jobs.NotAllowed):
        jobs.cancel_job(job=queued, user=_other())
    done = jobs.cancel_job(job=queued, user=inspector)
    assert done.state == Job.State.CANCELLED and "before it started" in done.error
    with pytest.raises(Conflict):
        jobs.cancel_job(job=done, user=supervisor)

    running = jobs.create_job(kind=Job.Kind.EXPORT, user=inspector)
    claimed = jobs.claim_job(running.pk, worker="w1")
    jobs.cancel_job(job=running, user=supervisor)
    assert Job.objects.get(pk=running.pk).state == Job.State.RUNNING
    with pytest.raises(jobs.JobCancelled):
        jobs.report_progress(claimed, step=1, total=3, phase="export")


def test_stop_reason_is_the_one_rule_for_cancel_and_a_job_taken_away(supervisor):
    """jobs.check_cancel (between steps) and the training hooks (between batches) both
    ask jobs.stop_reason: a cancel, or a claimed job the database no longer runs here."""
    from inspection.services.training import _RunHooks

    job = jobs.claim_job(jobs.create_job(kind=Job.Kind.TRAIN, user=supervisor).pk, worker="w1")
    hooks = _RunHooks(job)
    assert jobs.stop_reason(job) is None and not hooks.should_stop()
    jobs.fail_job(Job.objects.get(pk=job.pk), "lost: its worker stopped answering")
    assert "no longer this worker's" in jobs.stop_reason(job)
    hooks._asked = 0.0  # past its CANCEL_CHECK_S
    assert hooks.should_stop()
    with pytest.raises(jobs.JobCancelled, match="no longer"):
        jobs.check_cancel(job)

    other = jobs.claim_job(jobs.create_job(kind=Job.Kind.TRAIN, user=supervisor).pk, worker="w1")
    jobs.cancel_job(job=other, user=supervisor)
    assert jobs.stop_reason(other) == "cancelled"
    Job.objects.filter(pk=other.pk).delete()
    assert jobs.stop_reason(other) == "the job was deleted"


def test_progress_keeps_every_epochs_loss_for_the_run_page(supervisor, client_for):
    job = jobs.create_job(kind=Job.Kind.TRAIN, user=supervisor)
    jobs.claim_job(job.pk, worker="w1")
    for epoch, loss in ((1, 0.9), (2, 0.7), (4, 0.5), (2, 0.65)):  # epoch 3 never reported
        jobs.report_progress(job, phase="train", epoch=epoch, loss=loss)
    jobs.report_progress(job, phase="evaluate")  # details without a loss keep the history
    progress = client_for(supervisor).get(f"/api/v1/jobs/{job.pk}/").json()["progress"]
    assert progress["losses"] == [0.9, 0.65, None, 0.5]
    assert (progress["epoch"], progress["loss"], progress["phase"]) == (2, 0.65, "evaluate")


def _other():
    from tests.conftest import make_user

    return make_user("otto", "inspector")


def test_reaper_fails_jobs_with_a_stale_heartbeat(supervisor, settings):
    job = jobs.create_job(kind=Job.Kind.EXPORT, user=supervisor)
    jobs.claim_job(job.pk, worker="w1")
    jobs.report_progress(job, step=1, total=2, phase="writing the zip")
    assert jobs.reap_lost_jobs() == []
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.RUSTWATCH_JOB_STALE_S + 5)
    )
    assert jobs.reap_lost_jobs() == [job.pk]
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert "stopped during writing the zip" in job.error


# --- the gate, deploy, rollback ---------------------------------------------------------


def test_gate_passes_within_margin_and_holds_when_worse(settings):
    settings.RUSTWATCH_GATE_MARGINS = {"classifier": {"roc_auc": 0.02, "accuracy": 0.05}}
    first, report = registry.judge("classifier", {"roc_auc": 0.8}, None)
    assert first == ModelVersion.Gate.FIRST
    ok, report = registry.judge(
        "classifier", {"roc_auc": 0.79, "accuracy": 0.9}, {"roc_auc": 0.8, "accuracy": 0.9}
    )
    assert ok == ModelVersion.Gate.PASSED and all(c["ok"] for c in report["checks"])
    held, report = registry.judge(
        "classifier", {"roc_auc": 0.70, "accuracy": 0.95}, {"roc_auc": 0.8, "accuracy": 0.9}
    )
    assert held == ModelVersion.Gate.HELD
    assert [c["metric"] for c in report["checks"] if not c["ok"]] == ["roc_auc"]
    # a metric the candidate cannot produce is not a pass
    missing, _ = registry.judge("classifier", {"accuracy": 0.9}, {"roc_auc": 0.8, "accuracy": 0.9})
    assert missing == ModelVersion.Gate.HELD
    # nothing comparable (no val photos with boxes for either): a supervisor decides
    nothing, report = registry.judge("classifier", {}, {})
    assert nothing == ModelVersion.Gate.HELD and "no validation metric" in report["reason"]
    # an undefined deployed AUC (one-class val) leaves the decision to the other metrics
    ok, _ = registry.judge(
        "classifier", {"roc_auc": None, "accuracy": 0.9}, {"roc_auc": None, "accuracy": 0.9}
    )
    assert ok == ModelVersion.Gate.PASSED


def _version(name: str, gate: str = ModelVersion.Gate.PASSED) -> ModelVersion:
    return ModelVersion.objects.create(
        kind="classifier", name=name, artifact=f"models/{name}", gate=gate
    )


def test_deploy_and_rollback_move_one_pointer_with_an_audit_row(supervisor):
    v1, v2 = _version("classifier-1", ModelVersion.Gate.FIRST), _version("classifier-2")
    held = _version("classifier-3", ModelVersion.Gate.HELD)
    registry.deploy_version(version=v1, user=None, automatic=True)
    registry.deploy_version(version=v2, user=supervisor, reason="better AUC")
    assert registry.deployed_version("classifier") == v2
    with pytest.raises(registry.ReasonRequired):
        registry.deploy_version(version=held, user=supervisor)
    with pytest.raises(Conflict):
        registry.deploy_version(version=v2, user=supervisor, reason="again")
    registry.deploy_version(version=held, user=supervisor, reason="field photos look better")
    back = registry.rollback(kind="classifier", user=supervisor, reason="too many false alarms")
    assert back.version == v2 and back.previous == held and back.action == "rollback"
    assert registry.deployed_version("classifier") == v2
    rows = list(Deployment.objects.order_by("id").values_list("version__name", "actor__username"))
    assert rows == [
        ("classifier-1", None),
        ("classifier-2", "sam"),
        ("classifier-3", "sam"),
        ("classifier-2", "sam"),
    ]
    assert Deployment.objects.filter(reason="too many false alarms").count() == 1
    registry.rollback(kind="classifier", user=supervisor)  # v2 -> v1
    with pytest.raises(Conflict):
        registry.rollback(kind="classifier", user=supervisor)  # v1 was the first


# --- snapshots -------------------------------------------------------------------------


def test_snapshot_freezes_labelled_photos_with_stable_splits(inspection, settings, tmp_path):
    settings.RUSTWATCH_WORK_DIR = tmp_path / "work"
    labelled, unlabelled = add_photos(inspection, rust=8, norust=8, unlabelled=3)
    # a person called a boxed photo "no rust": it keeps no boxes for the detector
    said_no = labelled[0]
    Photo.objects.filter(pk=said_no.pk).update(verdict=Verdict.NORUST)
    # a rejected suggestion travels as negative feedback
    Box.objects.create(
        photo=labelled[1], label=labelled[1].boxes.first().label, xmin=1, ymin=1, xmax=9,
        ymax=9, source="model", state="rejected", score=0.7, model_version="detector-1",
    )  # fmt: skip
    snap = snapshots.create_snapshot()
    assert snap.photo_count == 16 and snap.rust_count == 7 and snap.box_count == 7
    assert sum(snap.splits.values()) == 16
    root = Path(default_storage.path(snap.path))
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["rejected"][f"p{labelled[1].pk}"][0]["box"] == [1, 1, 9, 9]
    assert not (root / "Annotations" / f"p{said_no.pk}.xml").exists()
    assert (root / "Annotations" / f"p{labelled[1].pk}.xml").is_file()
    assert f"p{unlabelled[0].pk}" not in manifest["photos"]

    before = dict(Photo.objects.filter(split__gt="").values_list("id", "split"))
    assert len(before) == 16
    # more data arrives; every photo keeps its split
    more, _ = add_photos(inspection, rust=6, norust=6, seed=7)
    snap2 = snapshots.create_snapshot()
    after = dict(Photo.objects.filter(split__gt="").values_list("id", "split"))
    assert {k: after[k] for k in before} == before
    assert snap2.photo_count == 28 and snap2.path != snap.path


def test_snapshot_without_labels_is_refused(inspection):
    add_photos(inspection, rust=0, norust=0, unlabelled=2)
    with pytest.raises(snapshots.EmptySnapshot):
        snapshots.create_snapshot()


# --- API --------------------------------------------------------------------------------


def test_jobs_api_lists_own_jobs_and_cancels(client_for, inspector, supervisor):
    mine = jobs.create_job(kind=Job.Kind.EXPORT, user=inspector)
    theirs = jobs.create_job(kind=Job.Kind.EXPORT, user=supervisor)
    c = client_for(inspector)
    ids = [j["id"] for j in c.get("/api/v1/jobs/").json()["results"]]
    assert ids == [mine.pk]
    assert c.get(f"/api/v1/jobs/{theirs.pk}/").status_code == 404
    assert c.post(f"/api/v1/jobs/{theirs.pk}/cancel/").status_code == 403
    r = c.post(f"/api/v1/jobs/{mine.pk}/cancel/")
    assert r.status_code == 202 and r.json()["state"] == "cancelled"
    r = c.post(f"/api/v1/jobs/{mine.pk}/cancel/")
    assert r.status_code == 409 and "already cancelled" in r.json()["detail"]
    assert len(client_for(supervisor).get("/api/v1/jobs/").json()["results"]) == 2


def test_models_api_deploy_needs_reason_for_held_and_rollback(client_for, supervisor, inspector):
    v1 = _version("classifier-1", ModelVersion.Gate.FIRST)
    held = _version("classifier-2", ModelVersion.Gate.HELD)
    registry.deploy_version(version=v1, user=None, automatic=True)
    sup = client_for(supervisor)
    body = client_for(inspector).get("/api/v1/models/").json()
    assert body["deployed"]["classifier"]["name"] == "classifier-1"
    assert {v["name"]: v["deployed"] for v in body["versions"]} == {
        "classifier-1": True,
        "classifier-2": False,
    }
    assert client_for(inspector).post(f"/api/v1/models/{held.pk}/deploy/").status_code == 403
    r = sup.post(f"/api/v1/models/{held.pk}/deploy/", {}, format="json")
    assert r.status_code == 400 and r.json()["code"] == "reason_required"
    r = sup.post(f"/api/v1/models/{held.pk}/deploy/", {"reason": "checked by hand"}, format="json")
    assert r.status_code == 200 and r.json()["previous"] == "classifier-1"
    r = sup.post("/api/v1/models/classifier/rollback/", {"reason": "regression"}, format="json")
    assert r.status_code == 200 and r.json()["version"] == "classifier-1"
    assert sup.post("/api/v1/models/fish/rollback/", {}, format="json").status_code == 404
    assert sup.post("/api/v1/models/999999/deploy/", {}, format="json").status_code == 404


def test_runs_api_is_for_supervisors_and_refuses_unknown_fields(client_for, inspector, supervisor):
    assert client_for(inspector).get("/api/v1/runs/").status_code == 200
    assert client_for(inspector).post("/api/v1/runs/", {}, format="json").status_code == 403
    r = client_for(supervisor).post("/api/v1/runs/", {"epochs": 3}, format="json")
    assert r.status_code == 400 and "epochs" in r.json()["detail"]


# --- triggers ---------------------------------------------------------------------------


def test_label_threshold_starts_one_run_after_a_label_save(
    inspection, settings, supervisor, django_capture_on_commit_callbacks
):
    from inspection.models import TrainingRun
    from inspection.services.photos import set_verdict
    from inspection.services.training import maybe_start_label_run

    settings.RUSTWATCH_TRAIN_AFTER_LABELS = 3
    _, unlabelled = add_photos(inspection, rust=4, norust=0, unlabelled=3)
    assert maybe_start_label_run() is None  # no run yet: the first is started by a person
    done = jobs.create_job(kind=Job.Kind.TRAIN)
    Job.objects.filter(pk=done.pk).update(state=Job.State.SUCCEEDED)
    TrainingRun.objects.create(job=done, labels_at_start=2)  # a finished run, 2 labels ago
    assert maybe_start_label_run() is None  # 2 new labels < 3
    with django_capture_on_commit_callbacks() as callbacks:
        set_verdict(photo=unlabelled[0], verdict="norust", user=supervisor)
    checks = [cb for cb in callbacks if cb.__name__ == "_check"]
    assert len(checks) == 1  # the label save scheduled one cheap check
    checks[0]()  # (the run's own task is queued on commit, which this test never reaches)
    run = TrainingRun.objects.get(trigger="labels")
    assert run.labels_at_start == 5
    assert run.job.state == "queued" and run.job.params["run_id"] == run.pk
    assert maybe_start_label_run() is None  # one is queued already


def test_nightly_run_and_label_tick_are_beat_tasks_editable_in_the_admin():
    from django_celery_beat.models import PeriodicTask

    tasks = dict(PeriodicTask.objects.values_list("name", "task"))
    assert tasks["nightly training"] == "inspection.tasks.training.nightly_run"
    assert tasks["training after new labels"] == "inspection.tasks.training.check_label_trigger"
    nightly = PeriodicTask.objects.get(name="nightly training")
    assert nightly.crontab is not None and nightly.enabled


def test_metrics_are_stored_as_json_postgresql_accepts():
    import numpy as np

    from ml.json_safe import json_safe

    metrics = {"roc_auc": float("nan"), "AP": np.float32(0.5), "confusion": [[1, 0], [0, 1]]}
    assert json_safe(metrics) == {"roc_auc": None, "AP": 0.5, "confusion": [[1, 0], [0, 1]]}
    ModelVersion.objects.create(kind="classifier", name="c-nan", metrics=json_safe(metrics))


def test_import_and_export_as_jobs_answer_202_and_finish_on_the_worker(
    client_for, inspector, supervisor, inspection, django_capture_on_commit_callbacks
):
    import io
    import zipfile

    from tests.loop_photos import photo_bytes

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"rust/r{i}.jpg", photo_bytes("rust", 50 + i)[0])
    buf.seek(0)
    buf.name = "labels.zip"
    ines = client_for(inspector)
    with django_capture_on_commit_callbacks(execute=True):  # the task runs (eagerly) on commit
        r = ines.post(
            "/api/v1/jobs/import/",
            {"file": buf, "inspection": inspection.pk},
            format="multipart",
        )
    assert r.status_code == 202 and r.json()["kind"] == "import", r.content
    job = ines.get(f"/api/v1/jobs/{r.json()['id']}/").json()
    assert job["state"] == "succeeded", job
    assert job["result"]["photos_created"] == 3 and job["result"]["verdicts"] == 3

    assert ines.post("/api/v1/jobs/export/", {}, format="json").status_code == 403
    sam = client_for(supervisor)
    r = sam.post("/api/v1/jobs/export/", {"inspection": 999999}, format="json")
    assert r.status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        r = sam.post("/api/v1/jobs/export/", {"inspection": inspection.pk}, format="json")
    assert r.status_code == 202
    job = sam.get(f"/api/v1/jobs/{r.json()['id']}/").json()
    assert job["state"] == "succeeded" and job["file_url"], job
    download = sam.get(job["file_url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()
    assert sum(n.startswith("JPEGImages/") for n in names) == 3
