"""Saving boxes and verdicts: validation, versions, history, VOC XML, suggestions."""

from __future__ import annotations

import io

import pytest

from inspection.errors import DomainError, InvalidBoxes, StaleEdit
from inspection.models import Box, Label, Photo, PhotoEvent
from inspection.services.boxes import review_suggestion, save_boxes, voc_path
from inspection.services.photos import ingest_photo, photo_state, set_verdict
from inspection.services.voc_files import write_photo_voc
from ml.voc import read_voc
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def photo(inspection, inspector) -> Photo:
    """A photo the inspector uploaded: reviewing the model's boxes on it is theirs to do."""
    return ingest_photo(
        inspection=inspection,
        file=io.BytesIO(jpeg_bytes(200, 100)),
        filename="p.jpg",
        user=inspector,
    )


def suggestion(photo: Photo, **coords) -> Box:
    c = {"xmin": 10, "ymin": 10, "xmax": 50, "ymax": 40, **coords}
    return Box.objects.create(
        photo=photo,
        label=Label.objects.get(name="rust"),
        source=Box.Source.MODEL,
        state=Box.State.SUGGESTED,
        score=0.8,
        model_version="det-3",
        **c,
    )


def test_save_writes_rows_xml_and_history(photo, inspector):
    boxes = [
        {"xmin": 0, "ymin": 5, "xmax": 60, "ymax": 50},
        {"xmin": 100, "ymin": 20, "xmax": 150, "ymax": 80, "difficult": True},
    ]
    saved = save_boxes(photo=photo, boxes=boxes, user=inspector, expected_version=1, verified=True)
    assert saved.version == 2 and saved.verified
    rows = list(
        photo.boxes.order_by("xmin").values_list(
            "xmin", "ymin", "xmax", "ymax", "difficult", "source", "changed_by"
        )
    )
    assert rows == [
        (0, 5, 60, 50, False, "human", inspector.pk),
        (100, 20, 150, 80, True, "human", inspector.pk),
    ]

    path = voc_path(saved)
    assert path.name == f"{photo.sha256}.xml" and path.parent == voc_path(photo).parent
    ann = read_voc(path)
    assert ann.filename == f"{photo.sha256}.jpg"
    assert ann.folder == photo.sha256[:2]
    assert ann.path == str(path.with_suffix(".jpg").resolve())
    assert (ann.width, ann.height, ann.depth, ann.verified) == (200, 100, 3, True)
    assert [
        (b.xmin, b.ymin, b.xmax, b.ymax, b.name, b.difficult, b.truncated) for b in ann.boxes
    ] == [(0, 5, 60, 50, "rust", False, True), (100, 20, 150, 80, "rust", True, False)]
    xml = path.read_text()
    assert '<annotation verified="yes">' in xml and "<segmented>0</segmented>" in xml

    event = PhotoEvent.objects.filter(photo=photo, action="boxes").get()
    assert event.actor == inspector and event.version == 2
    assert event.before == {"verified": False, "boxes": [], "verdict": "unknown"}
    assert [b["xmin"] for b in event.after["boxes"]] == [0, 100] and event.after["verified"]
    # Drawing rust boxes made the photo's verdict rust (nobody had chosen one).
    assert event.after["verdict"] == "rust" and saved.verdict == "rust"
    assert saved.verdict_by == inspector


def test_second_save_replaces_boxes_and_keeps_ids_sent_back(photo, inspector, supervisor):
    p = save_boxes(
        photo=photo,
        boxes=[
            {"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9},
            {"xmin": 20, "ymin": 20, "xmax": 30, "ymax": 30},
        ],
        user=inspector,
        expected_version=1,
    )
    first, second = photo.boxes.order_by("id")
    p = save_boxes(
        photo=p,
        boxes=[{"id": second.id, "xmin": 21, "ymin": 20, "xmax": 30, "ymax": 30}],
        user=supervisor,
        expected_version=p.version,
    )
    assert list(photo.boxes.values_list("id", "xmin")) == [(second.id, 21)]
    assert not Box.objects.filter(pk=first.id).exists()
    assert [b.xmin for b in read_voc(voc_path(p)).boxes] == [21]
    events = PhotoEvent.objects.filter(photo=photo, action="boxes").order_by("id")
    assert [e.actor for e in events] == [inspector, supervisor]
    assert len(events[1].before["boxes"]) == 2 and len(events[1].after["boxes"]) == 1


def test_stale_version_is_refused_with_current_state_and_nothing_changes(photo, inspector):
    p = save_boxes(
        photo=photo,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9}],
        user=inspector,
        expected_version=1,
    )
    xml_before = voc_path(p).read_bytes()
    with pytest.raises(StaleEdit) as info:
        save_boxes(photo=photo, boxes=[], user=inspector, expected_version=1)
    assert info.value.status == 412
    current = info.value.extra["current"]
    assert current["version"] == 2 and current["boxes"][0]["xmax"] == 9
    assert photo.boxes.count() == 1 and voc_path(p).read_bytes() == xml_before
    with pytest.raises(StaleEdit):
        set_verdict(photo=photo, verdict="norust", user=inspector, expected_version=1)
    assert Photo.objects.get(pk=photo.pk).verdict == "rust"  # from the box, not the stale call
    assert voc_path(p).read_bytes() == xml_before


@pytest.mark.parametrize(
    ("box", "needle"),
    [
        ({"xmin": 10, "ymin": 10, "xmax": 10, "ymax": 20}, "empty"),
        ({"xmin": 30, "ymin": 10, "xmax": 20, "ymax": 20}, "empty"),
        ({"xmin": -1, "ymin": 10, "xmax": 20, "ymax": 20}, "outside"),
        ({"xmin": 10, "ymin": 10, "xmax": 201, "ymax": 20}, "outside"),
        ({"xmin": 10, "ymin": 10, "xmax": 20, "ymax": 101}, "outside"),
        ({"xmin": 10, "ymin": 10, "xmax": 20.5, "ymax": 20}, "whole number"),
        ({"xmin": "a", "ymin": 10, "xmax": 20, "ymax": 20}, "whole number"),
        ({"xmin": 10, "ymin": 10, "xmax": 20}, "missing ymax"),
        ({"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5, "label": "weld-crack"}, "unknown label"),
        ({"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5, "id": 10**9}, "not a box of photo"),
    ],
)
def test_invalid_boxes_name_the_box_and_change_nothing(photo, inspector, box, needle):
    good = {"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}
    with pytest.raises(InvalidBoxes) as info:
        save_boxes(photo=photo, boxes=[good, box], user=inspector, expected_version=1)
    assert info.value.status == 400
    assert needle in info.value.message and "box 1" in info.value.message
    assert info.value.extra["index"] == 1
    photo.refresh_from_db()
    assert photo.version == 1 and not photo.boxes.exists()
    assert read_voc(voc_path(photo)).boxes == []  # the XML of the upload, untouched
    assert not PhotoEvent.objects.filter(action="boxes").exists()


def test_new_label_from_the_table_is_accepted(photo, inspector):
    Label.objects.create(name="weld-crack")
    save_boxes(
        photo=photo,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5, "label": "weld-crack"}],
        user=inspector,
        expected_version=1,
    )
    assert read_voc(voc_path(photo)).boxes[0].name == "weld-crack"


def test_failed_xml_write_rolls_back_the_rows(photo, inspector, monkeypatch):
    from inspection.services import boxes as boxes_service

    def boom(p):
        raise OSError("disk full")

    monkeypatch.setattr(boxes_service, "write_photo_voc", boom)
    with pytest.raises(OSError):
        save_boxes(
            photo=photo,
            boxes=[{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}],
            user=inspector,
            expected_version=1,
        )
    photo.refresh_from_db()
    assert photo.version == 1 and not photo.boxes.exists()
    assert not PhotoEvent.objects.filter(action="boxes").exists()


def test_verdict_is_audited_versioned_and_validated(photo, inspector):
    p = set_verdict(photo=photo, verdict="rust", user=inspector, expected_version=1)
    assert (p.verdict, p.verdict_by, p.version) == ("rust", inspector, 2) and p.verdict_at
    p = set_verdict(photo=p, verdict="norust", user=inspector, expected_version=None)
    event = PhotoEvent.objects.filter(photo=photo, action="verdict").first()  # newest first
    assert (event.before, event.after, event.version) == (
        {"verdict": "rust"},
        {"verdict": "norust"},
        3,
    )
    assert voc_path(p).exists()
    with pytest.raises(DomainError) as info:
        set_verdict(photo=p, verdict="maybe", user=inspector)
    assert info.value.status == 400 and "maybe" in info.value.message


def test_suggestions_stay_until_sent_back_then_become_accepted(photo, inspector):
    kept = suggestion(photo)
    taken = suggestion(photo, xmin=100, xmax=140)
    p = save_boxes(
        photo=photo,
        boxes=[
            {"id": taken.id, "xmin": 101, "ymin": 10, "xmax": 140, "ymax": 40},
            {"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5},
        ],
        user=inspector,
        expected_version=1,
    )
    kept.refresh_from_db()
    taken.refresh_from_db()
    assert kept.state == "suggested" and kept.xmin == 10
    assert (taken.state, taken.source, taken.score, taken.model_version, taken.xmin) == (
        "accepted",
        "model",
        0.8,
        "det-3",
        101,
    )
    # The XML holds the human box and the accepted one, never the open suggestion.
    assert sorted(b.xmin for b in read_voc(voc_path(p)).boxes) == [1, 101]
    state = photo_state(p)
    assert {b["state"] for b in state["boxes"]} == {"suggested", "accepted"}
    assert len(state["boxes"]) == 3

    # Leaving the accepted model box out later rejects it (kept for learning).
    p = save_boxes(photo=p, boxes=[], user=inspector, expected_version=p.version)
    taken.refresh_from_db()
    assert taken.state == "rejected"
    assert read_voc(voc_path(p)).boxes == []


def test_save_rejects_the_suggestions_it_names_and_keeps_the_others(photo, inspector):
    refused = suggestion(photo)
    left = suggestion(photo, xmin=100, xmax=140)
    p = save_boxes(
        photo=photo,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}],
        user=inspector,
        expected_version=1,
        rejected=[refused.id],
    )
    refused.refresh_from_db()
    left.refresh_from_db()
    assert (refused.state, refused.changed_by) == ("rejected", inspector)
    assert left.state == "suggested"
    assert [b.xmin for b in read_voc(voc_path(p)).boxes] == [1]
    event = p.events.filter(action="boxes").first()
    assert event.version == p.version == 2


@pytest.mark.parametrize("bad", ["not-a-list", [999999], "kept", "human"])
def test_save_refuses_bad_rejected_ids_and_changes_nothing(photo, inspector, bad):
    s = suggestion(photo)
    human = save_boxes(
        photo=photo,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}],
        user=inspector,
        expected_version=1,
    ).boxes.get(source="human")
    boxes = [{"id": s.id, "xmin": 10, "ymin": 10, "xmax": 50, "ymax": 40}]
    rejected = {"kept": [s.id], "human": [human.id]}.get(bad, bad) if isinstance(bad, str) else bad
    with pytest.raises(InvalidBoxes) as err:
        save_boxes(photo=photo, boxes=boxes, user=inspector, expected_version=2, rejected=rejected)
    assert "rejected" in err.value.message
    s.refresh_from_db()
    assert s.state == "suggested" and Photo.objects.get(pk=photo.pk).version == 2


def test_supervisor_reviews_a_suggestion(photo, supervisor):
    box = suggestion(photo)
    p = review_suggestion(box=box, action="accept", user=supervisor)
    box.refresh_from_db()
    assert box.state == "accepted" and box.changed_by == supervisor and p.version == 2
    assert len(read_voc(voc_path(p)).boxes) == 1
    p = review_suggestion(box=box, action="reject", user=supervisor, expected_version=2)
    assert read_voc(voc_path(p)).boxes == []
    events = PhotoEvent.objects.filter(photo=photo, action="suggestion").order_by("id")
    assert [e.after["review"] for e in events] == ["accept", "reject"]
    assert events[0].before["box"]["state"] == "suggested"
    with pytest.raises(DomainError):
        review_suggestion(box=box, action="maybe", user=supervisor)
    human = Box.objects.create(
        photo=photo, label=Label.objects.get(name="rust"), xmin=1, ymin=1, xmax=3, ymax=3
    )
    with pytest.raises(InvalidBoxes):
        review_suggestion(box=human, action="accept", user=supervisor)


def test_malformed_expected_version_is_a_400(photo, inspector):
    with pytest.raises(DomainError) as info:
        save_boxes(photo=photo, boxes=[], user=inspector, expected_version="abc")
    assert info.value.status == 400
    assert save_boxes(photo=photo, boxes=[], user=inspector, expected_version='"1"').version == 2


def test_model_suggestions_replace_open_ones_and_keep_reviewed(photo, supervisor):
    from inspection.services.boxes import add_suggestions

    p = add_suggestions(
        photo=photo,
        model_version="det-1",
        boxes=[
            {"xmin": 1, "ymin": 1, "xmax": 10, "ymax": 10, "score": 0.9},
            {"xmin": 20, "ymin": 20, "xmax": 40, "ymax": 40, "score": 0.4},
        ],
    )
    assert p.version == 2
    first, second = photo.boxes.order_by("id")
    review_suggestion(box=first, action="accept", user=supervisor)
    p = add_suggestions(
        photo=photo,
        model_version="det-2",
        boxes=[{"xmin": 50, "ymin": 5, "xmax": 90, "ymax": 60, "score": 0.7}],
    )
    rows = sorted(photo.boxes.values_list("xmin", "state", "model_version"))
    assert rows == [(1, "accepted", "det-1"), (50, "suggested", "det-2")]
    assert [b.xmin for b in read_voc(voc_path(p)).boxes] == [1]  # only the accepted one
    assert PhotoEvent.objects.filter(photo=photo, action="suggestion").count() == 3
    with pytest.raises(InvalidBoxes, match="score"):
        add_suggestions(
            photo=photo,
            model_version="det-3",
            boxes=[{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5, "score": 2}],
        )
    with pytest.raises(InvalidBoxes, match="outside"):
        add_suggestions(
            photo=photo,
            model_version="det-3",
            boxes=[{"xmin": 1, "ymin": 1, "xmax": 500, "ymax": 5, "score": 0.5}],
        )
    assert photo.boxes.count() == 2


# --- who may change the model's boxes: one rule for the review and for box saves ---


@pytest.fixture
def others_photo(inspection, integration_user) -> Photo:
    """A photo a drone uploaded: its suggestions are a supervisor's to review."""
    return ingest_photo(
        inspection=inspection,
        file=io.BytesIO(jpeg_bytes(200, 100, color=(10, 90, 200))),
        filename="drone.jpg",
        user=integration_user,
    )


def _unchanged(photo: Photo, box: Box, xml: bytes) -> None:
    p = Photo.objects.get(pk=photo.pk)
    box_now = Box.objects.get(pk=box.pk)
    assert (p.version, box_now.state) == (photo.version, box.state)
    assert voc_path(p).read_bytes() == xml
    assert not PhotoEvent.objects.filter(photo=p).exclude(action="upload").exists()


@pytest.mark.parametrize("how", ["accept-by-id", "reject-by-list", "leave-out-accepted"])
def test_inspector_cannot_review_others_suggestions_through_a_box_save(
    others_photo, inspector, supervisor, how
):
    s = suggestion(others_photo)
    if how == "leave-out-accepted":
        s.state = Box.State.ACCEPTED
        s.save()
        write_photo_voc(others_photo)
    xml = voc_path(others_photo).read_bytes()
    kwargs = {
        "accept-by-id": {"boxes": [{"id": s.id, "xmin": 10, "ymin": 10, "xmax": 50, "ymax": 40}]},
        "reject-by-list": {"boxes": [], "rejected": [s.id]},
        "leave-out-accepted": {"boxes": [{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}]},
    }[how]
    with pytest.raises(DomainError) as info:
        save_boxes(photo=others_photo, user=inspector, expected_version=1, **kwargs)
    assert info.value.status == 403 and str(s.id) in info.value.message
    assert "supervisor" in info.value.message
    _unchanged(others_photo, s, xml)

    # The same save by a supervisor goes through.
    p = save_boxes(photo=others_photo, user=supervisor, expected_version=1, **kwargs)
    assert p.version == 2
    expected = {"accept-by-id": "accepted"}.get(how, "rejected")
    assert Box.objects.get(pk=s.pk).state == expected


def test_inspector_may_still_save_human_boxes_on_others_photos(others_photo, inspector):
    s = suggestion(others_photo)
    p = save_boxes(
        photo=others_photo,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}],
        user=inspector,
        expected_version=1,
    )
    assert p.version == 2 and Box.objects.get(pk=s.pk).state == "suggested"
    # An accepted model box sent back unchanged is no review either.
    s.state = Box.State.ACCEPTED
    s.save()
    echo = {k: getattr(s, k) for k in ("id", "xmin", "ymin", "xmax", "ymax")}
    human = p.boxes.get(source="human")
    keep = {k: getattr(human, k) for k in ("id", "xmin", "ymin", "xmax", "ymax")}
    p = save_boxes(photo=p, boxes=[echo, keep], user=inspector, expected_version=2)
    assert p.version == 3 and Box.objects.get(pk=s.pk).state == "accepted"


def test_review_rule_is_in_the_service(others_photo, photo, inspector, supervisor):
    theirs = suggestion(others_photo)
    xml = voc_path(others_photo).read_bytes()
    with pytest.raises(DomainError) as info:
        review_suggestion(box=theirs, action="accept", user=inspector)
    assert info.value.status == 403
    _unchanged(others_photo, theirs, xml)
    with pytest.raises(DomainError):
        review_suggestion(box=theirs, action="accept", user=None)  # no person: no review
    assert review_suggestion(box=theirs, action="reject", user=supervisor).version == 2
    own = suggestion(photo)
    assert review_suggestion(box=own, action="accept", user=inspector).version == 2


# --- a rust box makes the verdict rust, unless a person chose the verdict ---


def test_rust_box_sets_the_verdict_and_removing_it_takes_it_back(photo, inspector):
    p = save_boxes(
        photo=photo,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}],
        user=inspector,
        expected_version=1,
    )
    assert (p.verdict, p.verdict_by) == ("rust", inspector) and p.verdict_at
    p = save_boxes(photo=p, boxes=[], user=inspector, expected_version=2)
    assert (p.verdict, p.verdict_by, p.verdict_at) == ("unknown", None, None)
    event = p.events.filter(action="boxes").first()
    assert (event.before["verdict"], event.after["verdict"]) == ("rust", "unknown")


def test_other_labels_do_not_set_the_verdict(photo, inspector):
    Label.objects.create(name="weld-crack")
    box = {"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5, "label": "weld-crack"}
    p = save_boxes(photo=photo, boxes=[box], user=inspector, expected_version=1)
    assert p.verdict == "unknown" and "verdict" not in p.events.first().after


@pytest.mark.parametrize("chosen", ["norust", "rust", "unknown"])  # unknown: "unsure"
def test_a_chosen_verdict_is_left_alone_by_boxes(photo, inspector, supervisor, chosen):
    p = set_verdict(photo=photo, verdict=chosen, user=supervisor, expected_version=1)
    p = save_boxes(
        photo=p,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}],
        user=inspector,
        expected_version=2,
    )
    assert (p.verdict, p.verdict_by) == (chosen, supervisor)
    p = save_boxes(photo=p, boxes=[], user=inspector, expected_version=3)
    assert (p.verdict, p.verdict_by) == (chosen, supervisor)


def test_accepting_a_rust_suggestion_sets_the_verdict(photo, inspector):
    p = review_suggestion(box=suggestion(photo), action="accept", user=inspector)
    assert p.verdict == "rust"
    assert p.events.filter(action="suggestion").first().after["verdict"] == "rust"


def test_failed_save_puts_back_the_xml_of_the_committed_rows(photo, inspector):
    """A lost save rewrites the XML from the rows under the lock: a file damaged or
    left stale by someone else is repaired, never replaced by a copy from before."""
    p = save_boxes(
        photo=photo,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9}],
        user=inspector,
        expected_version=1,
    )
    path = voc_path(p)
    good = path.read_bytes()
    path.write_bytes(b"<annotation>stale</annotation>")
    with pytest.raises(StaleEdit):
        save_boxes(photo=photo, boxes=[], user=inspector, expected_version=1)
    assert path.read_bytes() == good
