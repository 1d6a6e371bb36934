"""Model pages in a real Chromium: deploy and roll back with a reason, a run's live progress."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from inspection.models import Deployment, Job, ModelVersion, Snapshot, TrainingRun
from tests.browser.conftest import login, screenshot
from tests.conftest import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
# The run page polls its job every 1.5 s: give a busy CI machine a few polls.
POLL_WAIT_MS = 15_000

# Validation scores of a classifier on ten photos (1 = rust): the worker's plots read these.
VAL = {"y": [1, 1, 1, 1, 1, 0, 0, 0, 0], "prob": [0.9, 0.8, 0.7, 0.4, 0.6, 0.3, 0.2, 0.6, 0.1]}


def make_version(
    name: str, run: TrainingRun, metrics: dict, gate: str, report: dict
) -> ModelVersion:
    """A classifier version as a run registers it: a manifest and the worker's plots in storage."""
    from inspection.services.plots import render_plots

    folder = Path(settings.MEDIA_ROOT) / "models" / name
    folder.mkdir(parents=True)
    manifest = {"kind": "classifier", "version": name, "val_scores": {"classifier": VAL}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    render_plots("classifier", manifest, folder / "plots")
    return ModelVersion.objects.create(
        kind="classifier",
        name=name,
        artifact=f"models/{name}",
        run=run,
        snapshot=run.snapshot,
        metrics=metrics,
        gate=gate,
        gate_report=report,
    )


def finished_run(snapshot: Snapshot) -> TrainingRun:
    job = Job.objects.create(kind=Job.Kind.TRAIN, state=Job.State.SUCCEEDED, progress_total=4)
    return TrainingRun.objects.create(job=job, snapshot=snapshot)


@pytest.fixture
def registry_rows(seeded):
    """classifier-1 deployed by the gate (through the registry), classifier-2 held by it."""
    from inspection.services.registry import deploy_version

    make_user("sam", "supervisor")
    snap = Snapshot.objects.create(
        path="snapshots/1",
        dataset_hash="ab" * 32,
        photo_count=45,
        box_count=120,
        rust_count=30,
        splits={"train": 31, "val": 7, "test": 7},
    )
    first = make_version(
        "classifier-1",
        finished_run(snap),
        {"accuracy": 0.82, "roc_auc": 0.85, "recall_rust": 0.8, "confusion": [[3, 1], [1, 4]]},
        ModelVersion.Gate.FIRST,
        {"decision": "first"},
    )
    deploy_version(version=first, user=None, automatic=True)
    held = make_version(
        "classifier-2",
        finished_run(snap),
        {"accuracy": 0.78, "roc_auc": 0.80, "recall_rust": 0.85, "confusion": [[2, 2], [1, 4]]},
        ModelVersion.Gate.HELD,
        {
            "decision": "held",
            "checks": [
                {
                    "metric": "roc_auc",
                    "candidate": 0.8,
                    "deployed": 0.85,
                    "margin": 0.02,
                    "ok": False,
                }
            ],
        },
    )
    return first, held


def test_supervisor_deploys_a_held_version_with_a_reason_and_rolls_back(page, registry_rows):
    first, held = registry_rows
    page.set_viewport_size({"width": 1280, "height": 800})
    login(page, "sam", "pw-sam")
    page.get_by_role("link", name="Models", exact=True).click()
    expect(page.locator(f'tr[data-version="{first.pk}"]')).to_contain_text("deployed")
    expect(page.locator(f'tr[data-version="{held.pk}"]')).to_contain_text("-0.050")
    screenshot(page, "models-1280")

    page.get_by_role("link", name="classifier-2").click()
    expect(page.locator("#metrics")).to_contain_text("classifier-1 (deployed)")
    expect(page.locator("#gate")).to_contain_text("worse")
    expect(page.locator("#plots img")).to_have_count(3)  # the worker's PR, ROC and confusion PNGs
    loaded = "[...document.querySelectorAll('#plots img')].every(i => i.naturalWidth > 100)"
    page.wait_for_function(loaded)  # each PNG really loads
    expect(page.locator("#snapshot")).to_contain_text("45 (30 rust)")
    screenshot(page, "model-version-1280")

    page.get_by_label(re.compile("Reason")).fill("recall matters more on this fleet")
    page.get_by_role("button", name="Deploy classifier-2").click()
    expect(page.locator(".messages")).to_contain_text("classifier-2 is now the deployed classifier")
    expect(page.get_by_role("button", name="Roll back to the previous version")).to_be_visible()
    expect(page.locator("#deployments")).to_contain_text("recall matters more on this fleet")

    page.get_by_label(re.compile("Reason")).fill("false alarms on bridge 4")
    page.get_by_role("button", name="Roll back to the previous version").click()
    expect(page.locator(".messages")).to_contain_text(
        "classifier-1 is the deployed classifier again"
    )
    expect(page).to_have_url(re.compile(rf"/models/{first.pk}/$"))
    page.set_viewport_size({"width": 820, "height": 1180})
    screenshot(page, "model-version-tablet")
    page.get_by_role("navigation").get_by_role("link", name="Models").click()
    expect(page.locator(f'tr[data-version="{first.pk}"]')).to_contain_text("deployed")
    screenshot(page, "models-tablet")

    moves = list(Deployment.objects.order_by("id").values_list("action", "version__name", "reason"))
    assert moves == [
        ("deploy", "classifier-1", "passed the gate"),
        ("deploy", "classifier-2", "recall matters more on this fleet"),
        ("rollback", "classifier-1", "false alarms on bridge 4"),
    ]
    assert all(d.actor.username == "sam" for d in Deployment.objects.filter(automatic=False))

    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("link", name="Overview", exact=True).click()
    # the deployed classifiers' metrics over time: one point per deployment (3)
    expect(page.locator("#chart-classifier circle")).to_have_count(3 * 3)
    screenshot(page, "overview-1280")
    assert page.js_errors == []


def test_run_page_shows_live_progress_and_cancel(page, seeded):
    from inspection.services.jobs import report_progress

    make_user("sam", "supervisor")
    job = Job.objects.create(
        kind=Job.Kind.TRAIN,
        state=Job.State.RUNNING,
        log_tail="freezing the labelled photos\ntraining (detector: yes)",
    )
    run = TrainingRun.objects.create(job=job)
    # three epochs done before anyone opens the page: the page still draws all three
    for epoch, loss in ((1, 0.91), (2, 0.64), (3, 0.47)):
        report_progress(job, step=1, total=4, phase="train", epoch=epoch, loss=loss)
    page.set_viewport_size({"width": 1280, "height": 800})
    login(page, "sam", "pw-sam")
    page.goto(f"/models/runs/{run.pk}/")
    expect(page.locator("#epoch")).to_have_text("3")
    expect(page.locator("#loss")).to_have_text("0.4700")
    expect(page.locator("#loss-chart")).to_have_attribute("data-points", "3")
    expect(page.locator("#loss-chart circle title")).to_have_text(
        ["epoch 1: loss 0.9100", "epoch 2: loss 0.6400", "epoch 3: loss 0.4700"]
    )

    # the worker reports another epoch: the page follows without a reload
    report_progress(job, epoch=4, loss=0.41)
    Job.objects.filter(pk=job.pk).update(log_tail="epoch 4: loss 0.41")
    expect(page.locator("#epoch")).to_have_text("4", timeout=POLL_WAIT_MS)
    expect(page.locator("#loss")).to_have_text("0.4100", timeout=POLL_WAIT_MS)
    expect(page.locator("#loss-chart")).to_have_attribute("data-points", "4")
    expect(page.locator("#log")).to_contain_text("epoch 4: loss 0.41")
    screenshot(page, "run-live-1280")

    page.get_by_role("button", name="Cancel the run").click()
    expect(page.locator(".messages")).to_contain_text(
        f"Training run {run.pk} stops at its next step"
    )
    job.refresh_from_db()
    assert job.cancel_requested and job.state == Job.State.RUNNING
    # the worker stops: the page notices, reloads once and shows the end state
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.CANCELLED, error="Cancelled while running."
    )
    expect(page.locator("#run-state")).to_have_text("Cancelled", timeout=POLL_WAIT_MS)
    expect(page.locator("#job-error")).to_contain_text("Cancelled while running.")
    expect(page.locator("#cancel-form")).to_be_hidden()
    assert page.js_errors == []
