"""Saving a photo's boxes, and reviewing the model's suggestions.

A save replaces the photo's human (and accepted) boxes in one transaction,
refuses a stale version (412 with the current state), records the change in
the history and rewrites the labelImg XML beside the image atomically.
Model boxes still `suggested` are left alone unless the client sends their id:
then a person has looked at them, and they become accepted boxes.

Two rules live here, so that every path (the API, the pages, imports) goes
through them:
- reviewing the model's work (accepting, rejecting, un-accepting a model box)
  is for supervisors, and for inspectors on photos they uploaded themselves
  (`may_review_suggestions`), whether it comes as a review or inside a box save;
- a rust box makes the photo's verdict rust unless a person chose the verdict
  (`verdict_follows_boxes`).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from inspection.errors import DomainError, Forbidden, InvalidBoxes, StaleEdit
from inspection.models import Box, Label, Photo, PhotoEvent, Role, Verdict
from inspection.roles import has_role
from inspection.services.history import (
    actor_or_none,
    box_state,
    check_version,
    photo_state,
    record_event,
)
from inspection.services.voc_files import (
    annotation_boxes,
    voc_follows_rows,
    voc_path,
    write_photo_voc,
)

__all__ = [
    "add_suggestions",
    "annotation_state",
    "may_review_suggestions",
    "review_suggestion",
    "save_boxes",
    "validate_boxes",
    "verdict_follows_boxes",
    "voc_path",
]

_COORDS = ("xmin", "ymin", "xmax", "ymax")
# The label whose boxes mean "this photo shows rust" (created with the database).
RUST_LABEL = "rust"


def may_review_suggestions(user: AbstractBaseUser | None, photo: Photo) -> bool:
    """Supervisors review the model's boxes on any photo; inspectors on photos they uploaded."""
    if has_role(user, Role.SUPERVISOR):
        return True
    return (
        has_role(user, Role.INSPECTOR)
        and photo.uploaded_by_id is not None
        and photo.uploaded_by_id == getattr(user, "pk", None)
    )


def _require_review_right(user: AbstractBaseUser | None, photo: Photo, what: str) -> None:
    if not may_review_suggestions(user, photo):
        raise Forbidden(
            f"{what}: inspectors review the model's suggestions only on photos they "
            "uploaded themselves; ask a supervisor.",
            photo_id=photo.pk,
        )


def verdict_chosen_by_person(photo: Photo) -> bool:
    """True once someone set the verdict (set_verdict, an import's class folder), even "unknown".

    An explicit "unknown" is the editor's "unsure": boxes leave it alone too.
    Verdicts that follow from boxes are recorded in box events, never as verdict events.
    """
    return PhotoEvent.objects.filter(photo_id=photo.pk, action=PhotoEvent.Action.VERDICT).exists()


def verdict_follows_boxes(photo: Photo, user: AbstractBaseUser | None) -> str | None:
    """Apply "a rust box makes the verdict rust" to a locked photo; the old verdict if changed.

    Unless a person chose the verdict: a rust annotation box turns `unknown`
    into `rust`, and a `rust` that only came from boxes goes back to `unknown`
    when the last rust box is removed. A chosen verdict is never touched.
    The caller saves `verdict`, `verdict_by` and `verdict_at`.
    """
    if verdict_chosen_by_person(photo):
        return None
    has_rust = any(b.label.name == RUST_LABEL for b in annotation_boxes(photo))
    if has_rust and photo.verdict == Verdict.UNKNOWN:
        target = Verdict.RUST
    elif not has_rust and photo.verdict == Verdict.RUST:
        target = Verdict.UNKNOWN
    else:
        return None
    before = photo.verdict
    photo.verdict = target
    photo.verdict_by = actor_or_none(user) if target != Verdict.UNKNOWN else None
    photo.verdict_at = timezone.now() if target != Verdict.UNKNOWN else None
    return before


def _coordinate(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or value is None:
        raise InvalidBoxes(f"{where}: {key} must be a whole number of pixels.", field=key)
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidBoxes(
                f"{where}: {key}={value} is not a whole number of pixels.", field=key
            )
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise InvalidBoxes(f"{where}: {key}={value!r} is not a whole number of pixels.", field=key)


def validate_boxes(photo: Photo, boxes: Any) -> list[dict[str, Any]]:
    """Normalise and check the client's boxes: inside the image, non-empty, known labels.

    Errors name the box by its index, so the editor can point at it.
    """
    if not isinstance(boxes, list | tuple):
        raise InvalidBoxes("Boxes must be a list of {xmin, ymin, xmax, ymax, label} objects.")
    labels = {label.name: label for label in Label.objects.all()}
    seen_ids: set[int] = set()
    clean: list[dict[str, Any]] = []
    for i, raw in enumerate(boxes):
        where = f"box {i}"
        if not isinstance(raw, dict):
            raise InvalidBoxes(f"{where}: expected an object with xmin, ymin, xmax, ymax.", index=i)
        missing = [k for k in _COORDS if k not in raw]
        if missing:
            raise InvalidBoxes(f"{where}: missing {', '.join(missing)}.", index=i)
        try:
            xmin, ymin, xmax, ymax = (_coordinate(raw[k], where, k) for k in _COORDS)
        except InvalidBoxes as exc:
            exc.extra["index"] = i
            raise
        if not (xmin < xmax and ymin < ymax):
            raise InvalidBoxes(
                f"{where}: empty box ({xmin},{ymin},{xmax},{ymax}); "
                "it needs xmin < xmax and ymin < ymax.",
                index=i,
            )
        if xmin < 0 or ymin < 0 or xmax > photo.width or ymax > photo.height:
            raise InvalidBoxes(
                f"{where}: ({xmin},{ymin},{xmax},{ymax}) is outside the "
                f"{photo.width}x{photo.height} photo.",
                index=i,
            )
        label_name = raw.get("label", "rust")
        if isinstance(label_name, dict):  # tolerate {"name": ...} from a GET round trip
            label_name = label_name.get("name")
        label = labels.get(label_name) if isinstance(label_name, str) else None
        if label is None:
            known = ", ".join(sorted(labels)) or "none"
            raise InvalidBoxes(f"{where}: unknown label {label_name!r} (known: {known}).", index=i)
        difficult = raw.get("difficult", False)
        if difficult in (0, 1, "0", "1"):
            difficult = bool(int(difficult))
        if not isinstance(difficult, bool):
            raise InvalidBoxes(f"{where}: difficult must be true or false.", index=i)
        box_id = raw.get("id")
        if box_id is not None:
            if isinstance(box_id, bool) or not isinstance(box_id, int | str):
                raise InvalidBoxes(f"{where}: id {box_id!r} is not a box id.", index=i)
            try:
                box_id = int(box_id)
            except ValueError as exc:
                raise InvalidBoxes(f"{where}: id {box_id!r} is not a box id.", index=i) from exc
            if box_id in seen_ids:
                raise InvalidBoxes(f"{where}: box {box_id} is sent twice.", index=i)
            seen_ids.add(box_id)
        derived_from = raw.get("derived_from")
        if derived_from is not None and (
            isinstance(derived_from, bool)
            or not isinstance(derived_from, int)
            or box_id is not None
        ):
            raise InvalidBoxes(
                f"{where}: derived_from must be a suggestion's id, on a new box (no id).", index=i
            )
        clean.append(
            {
                "id": box_id,
                "xmin": xmin,
                "ymin": ymin,
                "xmax": xmax,
                "ymax": ymax,
                "label": label,
                "difficult": difficult,
                "derived_from": derived_from,
            }
        )
    return clean


def annotation_state(photo: Photo) -> dict[str, Any]:
    """What a box save changes, for the history: verified and the annotation boxes."""
    return {"verified": photo.verified, "boxes": [box_state(b) for b in annotation_boxes(photo)]}


def _stale(photo: Photo, expected: int) -> StaleEdit:
    return StaleEdit(
        f"Photo {photo.pk} is at version {photo.version}, not {expected}: someone else "
        "changed its boxes or verdict. Reload to see their work, then save again.",
        current=photo_state(photo),
    )


def save_boxes(
    *,
    photo: Photo,
    boxes: list[dict[str, Any]],
    user: AbstractBaseUser | None,
    expected_version: int,
    verified: bool | None = None,
    rejected: list[int] | None = None,
    action: str = PhotoEvent.Action.BOXES,
) -> Photo:
    """Replace the photo's human and accepted boxes; returns the photo at its new version.

    Items may carry the `id` of an existing box of this photo: a human box is
    updated in place, a model box becomes an accepted box (keeping its score
    and model version). A new item may carry `derived_from`, the id of the
    suggestion it corrects: a human box pointing at it, the suggestion rejected.
    Accepted model boxes left out are marked rejected; suggestions left out stay
    suggestions, unless their id is in `rejected`: then a person refused them in
    the same edit (kept as rejected, the model learns from it).
    Any of these changes to a model box is a review: `may_review_suggestions`
    decides (403 otherwise, nothing saved). A rust box may set the verdict
    (`verdict_follows_boxes`).
    """
    expected = check_version(expected_version)
    if verified is not None and not isinstance(verified, bool):
        raise DomainError("verified must be true or false.", field="verified")
    actor = actor_or_none(user)
    with voc_follows_rows(photo), transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        if expected != locked.version:
            raise _stale(locked, expected)
        clean = validate_boxes(locked, boxes)
        before = annotation_state(locked)
        existing = {b.id: b for b in Box.objects.filter(photo=locked)}
        for i, item in enumerate(clean):
            if item["id"] is not None and item["id"] not in existing:
                raise InvalidBoxes(
                    f"box {i}: box {item['id']} is not a box of photo {locked.pk}.", index=i
                )
        kept_ids = {i["id"] for i in clean}
        corrected = _corrected_suggestions(locked, clean, existing)
        refused = _refused_suggestions(locked, existing, rejected, kept_ids)
        refused += [
            existing[i]
            for i in corrected
            if existing[i] not in refused and existing[i].state != Box.State.REJECTED
        ]
        reviews = _reviews_in_save(clean, existing, refused, kept_ids)
        if reviews:
            _require_review_right(user, locked, reviews[0])

        kept: set[int] = set()
        for item in clean:
            fields = {k: item[k] for k in (*_COORDS, "label", "difficult")}
            box = existing.get(item["id"]) if item["id"] is not None else None
            if box is None:
                box = Box(
                    photo=locked,
                    source=Box.Source.HUMAN,
                    state=Box.State.ACCEPTED,
                    derived_from=existing.get(item["derived_from"]),
                )
            else:
                kept.add(box.id)
            changed = (
                box.pk is None
                or box.state != Box.State.ACCEPTED
                or any(getattr(box, k) != v for k, v in fields.items())
            )
            if not changed:
                continue
            for k, v in fields.items():
                setattr(box, k, v)
            box.state = Box.State.ACCEPTED
            box.changed_by = actor
            box.save()

        for box in refused:
            box.state = Box.State.REJECTED
            box.changed_by = actor
            box.save(update_fields=["state", "changed_by", "changed_at"])

        for box in existing.values():
            if box.id in kept or box in refused:
                continue
            if box.source == Box.Source.HUMAN:
                box.delete()
            elif box.state == Box.State.ACCEPTED:
                # Once accepted, now removed by a person: keep it as a rejected suggestion
                # (the model learns from what people refuse).
                box.state = Box.State.REJECTED
                box.changed_by = actor
                box.save(update_fields=["state", "changed_by", "changed_at"])

        if verified is not None:
            locked.verified = verified
        after = annotation_state(locked)
        old_verdict = verdict_follows_boxes(locked, user)
        if old_verdict is not None:
            before["verdict"], after["verdict"] = old_verdict, locked.verdict
        locked.version += 1
        locked.save(update_fields=["verified", "version", "verdict", "verdict_by", "verdict_at"])
        record_event(photo=locked, action=action, user=user, before=before, after=after)
        write_photo_voc(locked)
    return locked


def _corrected_suggestions(
    photo: Photo, clean: list[dict[str, Any]], existing: dict[int, Box]
) -> list[int]:
    """Ids of the suggestions new boxes correct (`derived_from`): they are rejected in the save.

    A corrected suggestion is "edited" in the model's record: a person's box replaces it.
    """
    ids: list[int] = []
    for i, item in enumerate(clean):
        source_id = item["derived_from"]
        if source_id is None:
            continue
        source = existing.get(source_id)
        if source is None or source.source != Box.Source.MODEL:
            raise InvalidBoxes(
                f"box {i}: derived_from {source_id} is not a model suggestion of photo {photo.pk}.",
                index=i,
            )
        if source_id not in ids:
            ids.append(source_id)
    return ids


def _reviews_in_save(
    clean: list[dict[str, Any]],
    existing: dict[int, Box],
    refused: list[Box],
    kept_ids: set[int | None],
) -> list[str]:
    """What a box save would change about model boxes, in words (empty: no review in it)."""
    reviews = [
        f"box {i}: accepting model suggestion {item['id']}"
        for i, item in enumerate(clean)
        if item["id"] is not None
        and existing[item["id"]].source == Box.Source.MODEL
        and existing[item["id"]].state != Box.State.ACCEPTED
    ]
    reviews += [f"rejected: rejecting model suggestion {b.id}" for b in refused]
    reviews += [
        f"leaving out accepted model box {b.id} rejects it"
        for b in existing.values()
        if b.source == Box.Source.MODEL
        and b.state == Box.State.ACCEPTED
        and b.id not in kept_ids
        and b not in refused
    ]
    return reviews


def _refused_suggestions(
    photo: Photo, existing: dict[int, Box], rejected: Any, kept_ids: set[int | None]
) -> list[Box]:
    """The model boxes a save rejects: ids of this photo's model boxes, not also kept."""
    if rejected is None:
        return []
    if not isinstance(rejected, list | tuple):
        raise InvalidBoxes("rejected must be a list of suggestion ids.", field="rejected")
    refused: list[Box] = []
    for box_id in rejected:
        box = existing.get(box_id) if isinstance(box_id, int) else None
        if box is None or box.source != Box.Source.MODEL:
            raise InvalidBoxes(
                f"rejected: {box_id!r} is not a model suggestion of photo {photo.pk}.",
                field="rejected",
            )
        if box_id in kept_ids:
            raise InvalidBoxes(
                f"rejected: suggestion {box_id} is also in boxes; keep it or reject it.",
                field="rejected",
            )
        if box.state != Box.State.REJECTED:
            refused.append(box)
    return refused


def review_suggestion(
    *,
    box: Box,
    action: str,
    user: AbstractBaseUser | None,
    expected_version: int | None = None,
) -> Photo:
    """Accept or reject one model suggestion (audited, versioned, XML rewritten).

    Supervisors on any photo, inspectors on photos they uploaded
    (`may_review_suggestions`; 403 otherwise). Accepting a rust box may set the
    verdict like a drawn one.
    """
    if action not in {"accept", "reject"}:
        raise DomainError(
            f"Unknown review action {action!r}; use 'accept' or 'reject'.", field="action"
        )
    if box.source != Box.Source.MODEL:
        raise InvalidBoxes(
            f"Box {box.pk} was drawn by a person; only model suggestions are reviewed."
        )
    photo = box.photo
    with voc_follows_rows(photo), transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        _require_review_right(user, locked, f"Reviewing box {box.pk}")
        if expected_version is not None:
            expected = check_version(expected_version)
            if expected != locked.version:
                raise _stale(locked, expected)
        current = Box.objects.select_related("label").get(pk=box.pk)
        before: dict[str, Any] = {"box": box_state(current)}
        current.state = Box.State.ACCEPTED if action == "accept" else Box.State.REJECTED
        current.changed_by = actor_or_none(user)
        current.save(update_fields=["state", "changed_by", "changed_at"])
        after: dict[str, Any] = {"box": box_state(current), "review": action}
        old_verdict = verdict_follows_boxes(locked, user)
        if old_verdict is not None:
            before["verdict"], after["verdict"] = old_verdict, locked.verdict
        locked.version += 1
        locked.save(update_fields=["version", "verdict", "verdict_by", "verdict_at"])
        record_event(
            photo=locked,
            action=PhotoEvent.Action.SUGGESTION,
            user=user,
            before=before,
            after=after,
        )
        write_photo_voc(locked)
    box.state = current.state
    return locked


def add_suggestions(
    *,
    photo: Photo,
    boxes: list[dict[str, Any]],
    model_version: str,
    user: AbstractBaseUser | None = None,
) -> Photo:
    """Replace the photo's open model suggestions with a model's new ones.

    Items: {"xmin","ymin","xmax","ymax", "score": float, "label": str = "rust"}.
    Suggestions a person already accepted or rejected are kept as they are; the
    XML is not touched (suggestions are not annotations). Audited and versioned,
    so an editor holding the old state reloads before saving.
    """
    if not model_version:
        raise DomainError("A model version is needed for suggestions.", field="model_version")
    with transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        clean = validate_boxes(locked, [{k: v for k, v in b.items() if k != "id"} for b in boxes])
        scores = []
        for i, raw in enumerate(boxes):
            score = raw.get("score")
            if (
                isinstance(score, bool)
                or not isinstance(score, int | float)
                or not (0.0 <= float(score) <= 1.0)
            ):
                raise InvalidBoxes(f"box {i}: score must be a number from 0 to 1.", index=i)
            scores.append(float(score))
        open_boxes = Box.objects.filter(
            photo=locked, source=Box.Source.MODEL, state=Box.State.SUGGESTED
        ).select_related("label")
        before = {"suggestions": [box_state(b) for b in open_boxes]}
        open_boxes.delete()
        created = Box.objects.bulk_create(
            Box(
                photo=locked,
                source=Box.Source.MODEL,
                state=Box.State.SUGGESTED,
                score=score,
                model_version=model_version[:64],
                changed_by=actor_or_none(user),
                **{k: item[k] for k in (*_COORDS, "label", "difficult")},
            )
            for item, score in zip(clean, scores, strict=True)
        )
        locked.version += 1
        locked.save(update_fields=["version"])
        record_event(
            photo=locked,
            action=PhotoEvent.Action.SUGGESTION,
            user=user,
            before=before,
            after={
                "model_version": model_version,
                "suggestions": [{k: getattr(b, k) for k in (*_COORDS, "score")} for b in created],
            },
        )
    return locked
