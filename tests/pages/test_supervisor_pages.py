"""Supervisor pages: who may see and act, the review queue's rules, the model pages' reads."""

from __future__ import annotations

import pytest
from django.test import Client

from inspection import selectors_supervisor as sup
from inspection.models import Box, Job, ModelVersion, Photo, PhotoEvent, TrainingRun
from inspection.services.boxes import review_suggestion, save_boxes
from inspection.services.photos import set_verdict
from tests.api.conftest import add_suggestion, ingest
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def photo(inspection, inspector) -> Photo:
    return ingest(inspection, inspector, name="deck-01.jpg", seed=11)


@pytest.fixture
def suggested(photo) -> Box:
    return add_suggestion(photo)


@pytest.fixture
def version(db) -> ModelVersion:
    job = Job.objects.create(kind=Job.Kind.TRAIN, state=Job.State.SUCCEEDED)
    run = TrainingRun.objects.create(job=job)
    return ModelVersion.objects.create(
        kind="classifier",
        name="classifier-1",
        artifact="models/classifier-1",
        run=run,
        metrics={"accuracy": 0.8, "roc_auc": 0.85, "confusion": [[3, 1], [1, 5]]},
        gate=ModelVersion.Gate.FIRST,
    )


GET_PAGES = [
    "/review/",
    "/review/photos/{photo}/",
    "/models/",
    "/models/{version}/",
    "/models/runs/{run}/",
    "/overview/",
]


def fill(path: str, photo, version) -> str:
    return path.format(photo=photo.pk, version=version.pk, run=version.run_id)


def post_actions(photo, box, version) -> list[tuple[str, dict]]:
    return [
        (f"/review/photos/{photo.pk}/suggestions/{box.pk}/", {"action": "accept", "version": 1}),
        (f"/review/photos/{photo.pk}/approve/", {"version": 1}),
        (f"/models/{version.pk}/deploy/", {"reason": "try"}),
        ("/models/classifier/rollback/", {"reason": "try"}),
        ("/models/runs/start/", {}),
        (f"/models/runs/{version.run_id}/cancel/", {}),
    ]


@pytest.mark.parametrize("path", GET_PAGES)
def test_anonymous_is_sent_to_login(client, photo, version, path):
    r = client.get(fill(path, photo, version))
    assert r.status_code == 302 and r["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("path", GET_PAGES)
def test_inspector_gets_403_naming_the_role(photo, version, inspector, path):
    r = signed_in(inspector).get(fill(path, photo, version))
    assert r.status_code == 403
    assert b"supervisor role" in r.content


def test_inspector_cannot_act_and_nothing_changes(photo, suggested, version, inspector):
    c = signed_in(inspector)
    for url, data in post_actions(photo, suggested, version):
        r = c.post(url, data)
        assert r.status_code == 403, url
        assert b"supervisor role" in r.content
    suggested.refresh_from_db()
    photo.refresh_from_db()
    assert suggested.state == Box.State.SUGGESTED and photo.version == 1
    assert TrainingRun.objects.count() == 1


@pytest.mark.parametrize("path", GET_PAGES)
def test_supervisor_sees_every_page(photo, suggested, version, supervisor, path):
    r = signed_in(supervisor).get(fill(path, photo, version))
    assert r.status_code == 200


def test_menu_shows_supervisor_entries_only_to_supervisors(inspector, supervisor):
    assert b'href="/review/"' in signed_in(supervisor).get("/").content
    assert b'href="/review/"' not in signed_in(inspector).get("/").content


# --- the review rules -----------------------------------------------------------------


def queue_ids(**filters) -> list[int]:
    return sup.review_queue(sup.ReviewFilters(**filters)).ids


def test_queue_holds_suggested_and_edited_photos_not_untouched(inspection, inspector):
    untouched = ingest(inspection, inspector, name="a.jpg", seed=1)
    with_suggestion = ingest(inspection, inspector, name="b.jpg", seed=2)
    add_suggestion(with_suggestion)
    edited = ingest(inspection, inspector, name="c.jpg", seed=3)
    set_verdict(photo=edited, verdict="rust", user=inspector, expected_version=1)
    ids = queue_ids()
    assert set(ids) == {with_suggestion.pk, edited.pk}
    assert untouched.pk not in ids
    [row] = sup.review_progress()
    assert (row["reviewed"], row["total"], row["untouched"]) == (0, 2, 1)


def test_reviewed_once_a_supervisor_acts_after_the_last_edit(photo, suggested, supervisor):
    other = make_user("ivan", "inspector")
    photo = review_suggestion(box=suggested, action="accept", user=supervisor, expected_version=1)
    assert photo.pk not in queue_ids()
    [row] = sup.review_progress()
    assert (row["reviewed"], row["total"]) == (1, 1)
    # an inspector changes it again: back in the queue
    set_verdict(photo=photo, verdict="norust", user=other, expected_version=photo.version)
    assert photo.pk in queue_ids()
    assert sup.review_progress()[0]["reviewed"] == 0


def test_queue_filters_by_inspection_inspector_and_score(inspection, asset, inspector):
    from inspection.models import Inspection

    other_insp = Inspection.objects.create(asset=asset, name="2027 survey")
    ivan = make_user("ivan", "inspector")
    a = ingest(inspection, inspector, name="a.jpg", seed=1)
    Box.objects.filter(pk=add_suggestion(a).pk).update(score=0.9)
    b = ingest(other_insp, ivan, name="b.jpg", seed=2)
    Box.objects.filter(pk=add_suggestion(b).pk).update(score=0.3)
    assert set(queue_ids(inspection_id=other_insp.pk)) == {b.pk}
    assert set(queue_ids(inspector_id=inspector.pk)) == {a.pk}
    assert set(queue_ids(min_score=0.5)) == {a.pk}
    assert set(queue_ids(max_score=0.5)) == {b.pk}
    r = signed_in(make_user("sue", "supervisor")).get(f"/review/?inspection={other_insp.pk}")
    assert r.status_code == 200
    assert f'data-photo="{b.pk}"'.encode() in r.content
    assert f'data-photo="{a.pk}"'.encode() not in r.content


def test_bad_filter_values_are_a_message_not_a_500(photo, supervisor):
    r = signed_in(supervisor).get("/review/?min_score=lots&inspection=99999&inspector=x")
    assert r.status_code == 200
    assert b"Enter a number" in r.content


# --- acting through the page ------------------------------------------------------------


def test_accept_and_reject_through_the_page_are_audited(photo, supervisor):
    keep, drop = add_suggestion(photo), add_suggestion(photo, xmin=60, xmax=90)
    c = signed_in(supervisor)
    r = c.post(
        f"/review/photos/{photo.pk}/suggestions/{keep.pk}/", {"action": "accept", "version": 1}
    )
    assert r.status_code == 302 and r["Location"] == f"/review/photos/{photo.pk}/"
    r = c.post(
        f"/review/photos/{photo.pk}/suggestions/{drop.pk}/", {"action": "reject", "version": 2}
    )
    assert r.status_code == 302 and r["Location"] == "/review/"  # nothing left: on to the next
    keep.refresh_from_db()
    drop.refresh_from_db()
    assert (keep.state, drop.state) == (Box.State.ACCEPTED, Box.State.REJECTED)
    events = PhotoEvent.objects.filter(photo=photo, action=PhotoEvent.Action.SUGGESTION)
    assert {e.after["review"] for e in events} == {"accept", "reject"}
    assert all(e.actor == supervisor for e in events)
    page = c.get(f"/review/photos/{photo.pk}/").content.decode()
    assert "Model suggestion: suggestion accepted (0.80)" in page and "· sam" in page
    assert "reviewed" in page


def test_stale_page_is_told_to_reload_and_nothing_changes(photo, suggested, supervisor):
    c = signed_in(supervisor)
    r = c.post(
        f"/review/photos/{photo.pk}/suggestions/{suggested.pk}/",
        {"action": "accept", "version": 7},
        follow=True,
    )
    assert r.status_code == 200
    assert b"someone else changed" in r.content
    suggested.refresh_from_db()
    assert suggested.state == Box.State.SUGGESTED


def test_bad_action_and_foreign_box_are_messages(photo, suggested, supervisor, inspection):
    c = signed_in(supervisor)
    r = c.post(
        f"/review/photos/{photo.pk}/suggestions/{suggested.pk}/",
        {"action": "maybe", "version": 1},
        follow=True,
    )
    assert b"Unknown review action" in r.content
    other = ingest(inspection, None, name="z.jpg", seed=5)
    r = c.post(
        f"/review/photos/{other.pk}/suggestions/{suggested.pk}/",
        {"action": "accept", "version": 1},
        follow=True,
    )
    assert b"is not a box of photo" in r.content
    r = c.post(f"/review/photos/{photo.pk}/approve/", {"version": "v?"}, follow=True)
    assert r.status_code == 200 and b"not a whole number" in r.content


def test_approve_verifies_the_inspectors_boxes(photo, inspector, supervisor):
    box = {"xmin": 5, "ymin": 5, "xmax": 40, "ymax": 30, "label": "rust"}
    photo = save_boxes(photo=photo, boxes=[box], user=inspector, expected_version=1)
    assert photo.pk in queue_ids()
    c = signed_in(supervisor)
    r = c.post(f"/review/photos/{photo.pk}/approve/", {"version": photo.version})
    assert r.status_code == 302
    photo.refresh_from_db()
    assert photo.verified and photo.boxes.count() == 1
    assert photo.pk not in queue_ids()
    assert photo.events.first().actor == supervisor
    page = c.get(f"/review/photos/{photo.pk}/").content.decode()
    assert "Boxes saved: 1 box, verified" in page
    assert "Boxes saved: 0 boxes → 1 box" in page


def test_approve_refused_while_suggestions_are_open(photo, suggested, supervisor):
    r = signed_in(supervisor).post(
        f"/review/photos/{photo.pk}/approve/", {"version": 1}, follow=True
    )
    assert b"still has open model suggestions" in r.content
    photo.refresh_from_db()
    assert photo.version == 1


# --- model pages -------------------------------------------------------------------------


def test_model_pages_show_metrics_confusion_and_run(version, supervisor):
    c = signed_in(supervisor)
    page = c.get("/models/").content.decode()
    assert "classifier-1" in page and "0.850" in page
    detail = c.get(f"/models/{version.pk}/").content.decode()
    assert 'id="confusion"' in detail and "roc_auc" in detail
    assert f"/models/{version.pk}/deploy/" in detail
    run = c.get(f"/models/runs/{version.run_id}/").content.decode()
    assert f'data-job-url="/api/v1/jobs/{version.run.job_id}/"' in run


def test_overview_counts_labelled_suggested_unlabelled(inspection, inspector, supervisor):
    a = ingest(inspection, inspector, name="a.jpg", seed=1)
    set_verdict(photo=a, verdict="rust", user=inspector, expected_version=1)
    b = ingest(inspection, inspector, name="b.jpg", seed=2)
    add_suggestion(b)
    ingest(inspection, inspector, name="c.jpg", seed=3)
    counts = sup.label_counts()
    assert (counts["labelled"], counts["suggested"], counts["untouched"]) == (1, 1, 1)
    [row] = sup.rust_by_inspection()
    assert (row["photos"], row["labelled"], row["rust"], row["rust_share"]) == (3, 1, 1, 100)
    page = signed_in(supervisor).get("/overview/").content.decode()
    assert 'id="count-suggested">1<' in page


def test_start_run_queues_one_and_cancel_stops_it(supervisor):
    c = signed_in(supervisor)
    r = c.post("/models/runs/start/", {"skip_detector": "on"})
    run = TrainingRun.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/models/runs/{run.pk}/"
    assert run.job.state == Job.State.QUEUED and run.job.created_by == supervisor
    assert run.config["skip_detector"] is True and run.trigger == "manual"
    page = c.get(r["Location"]).content.decode()
    assert f"Training run {run.pk} queued" in page and "Cancel the run" in page
    r = c.post(f"/models/runs/{run.pk}/cancel/", follow=True)
    assert f"Training run {run.pk} cancelled" in r.content.decode()
    run.job.refresh_from_db()
    assert run.job.state == Job.State.CANCELLED
    r = c.post(f"/models/runs/{run.pk}/cancel/", follow=True)  # twice: a message, not a 500
    assert r.status_code == 200 and b"already cancelled" in r.content


def test_deploy_and_rollback_refusals_are_messages(version, supervisor):
    from inspection.models import Deployment

    c = signed_in(supervisor)
    r = c.post("/models/classifier/rollback/", {"reason": "x"}, follow=True)
    assert r.status_code == 200 and b"nothing to roll back" in r.content
    ModelVersion.objects.filter(pk=version.pk).update(gate=ModelVersion.Gate.HELD)
    r = c.post(f"/models/{version.pk}/deploy/", {"reason": "  "}, follow=True)
    assert r.status_code == 200 and b"give a reason" in r.content
    assert not Deployment.objects.exists()
    r = c.post(f"/models/{version.pk}/deploy/", {"reason": "r" * 2001}, follow=True)
    assert b"longer than 2,000 characters" in r.content
    r = c.post(f"/models/{version.pk}/deploy/", {"reason": "the fleet needs recall"}, follow=True)
    assert b"classifier-1 is now the deployed classifier" in r.content
    [d] = Deployment.objects.all()
    assert (d.actor, d.reason, d.automatic) == (supervisor, "the fleet needs recall", False)
    assert c.post("/models/fish/rollback/", {}, follow=True).status_code == 200
    assert c.post("/models/99999/deploy/", {}).status_code == 404


def test_version_page_shows_the_share_of_its_suggestions_people_accepted(photo, supervisor):
    detector = ModelVersion.objects.create(kind="detector", name="det-1", artifact="models/det-1")
    keep, drop, _open = (
        add_suggestion(photo, xmin=10 + 30 * i, xmax=30 + 30 * i) for i in range(3)
    )
    photo = review_suggestion(box=keep, action="accept", user=supervisor, expected_version=1)
    review_suggestion(box=drop, action="reject", user=supervisor, expected_version=photo.version)
    page = signed_in(supervisor).get(f"/models/{detector.pk}/").content.decode()
    assert "50 % accepted</strong> of 2 reviewed" in page
    assert "1 accepted · 0 edited · 1 rejected · 1 open" in page


def test_correct_through_the_page_makes_a_persons_box_and_refuses_bad_coordinates(
    photo, suggested, supervisor
):
    c = signed_in(supervisor)
    url = f"/review/photos/{photo.pk}/suggestions/{suggested.pk}/"
    r = c.post(
        url, {"action": "edit", "version": 1, "xmin": 5, "ymin": 5, "xmax": "wide"}, follow=True
    )
    assert r.status_code == 200 and b"lacks ymax" in r.content
    r = c.post(
        url,
        {"action": "edit", "version": 1, "xmin": 5, "ymin": 5, "xmax": 900, "ymax": 40},
        follow=True,
    )
    assert b"outside the 200x100 photo" in r.content
    r = c.post(url, {"action": "edit", "version": 1, "xmin": 12, "ymin": 8, "xmax": 60, "ymax": 44})
    assert r.status_code == 302
    suggested.refresh_from_db()
    human = Box.objects.get(derived_from=suggested)
    assert suggested.state == Box.State.REJECTED
    assert (human.source, human.xmin, human.ymax, human.changed_by) == ("human", 12, 44, supervisor)
    from inspection.services.suggestions import suggestion_stats

    assert suggestion_stats("det-1")["edited"] == 1  # the model's record counts the correction
    r = c.post(
        url,
        {"action": "edit", "version": 2, "xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9},
        follow=True,
    )
    assert b"not an open model suggestion" in r.content
