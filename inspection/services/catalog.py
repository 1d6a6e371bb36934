"""Assets and the inspections made of them."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from inspection.errors import Conflict, DomainError, Forbidden
from inspection.models import Asset, Inspection, Photo, Role
from inspection.roles import has_role
from inspection.services.history import actor_or_none

log = logging.getLogger(__name__)

# What a client may change; anything else is a 400 naming the field.
ASSET_FIELDS = frozenset({"name", "kind", "description"})
INSPECTION_FIELDS = frozenset({"name", "date", "notes"})


def _validation_message(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def check_may_create_asset(user: AbstractBaseUser | None, name: str) -> None:
    """Creating assets is for supervisors (Forbidden, 403, otherwise).

    `user=None` is the operator at the command line (manage.py), who may.
    """
    if user is not None and not has_role(user, Role.SUPERVISOR):
        raise Forbidden(
            f"There is no asset named '{name}', and only supervisors create assets: "
            "ask a supervisor to create it, or pick an existing asset."
        )


def create_asset(
    *,
    name: str,
    kind: str = Asset.Kind.OTHER,
    description: str = "",
    user: AbstractBaseUser | None = None,
) -> Asset:
    """Create an asset; a name in use is a Conflict (409), a bad field a 400.

    Only supervisors may (`check_may_create_asset`); `user=None` is the command line.
    """
    check_may_create_asset(user, (name or "").strip())
    asset = Asset(name=(name or "").strip(), kind=kind, description=description or "")
    try:
        asset.full_clean()
    except ValidationError as exc:
        if (
            "name" in getattr(exc, "message_dict", {})
            and Asset.objects.filter(name=asset.name).exists()
        ):
            raise Conflict(f"An asset named '{asset.name}' exists already.") from exc
        raise DomainError(_validation_message(exc)) from exc
    try:
        with transaction.atomic():
            asset.save()
    except IntegrityError as exc:
        raise Conflict(f"An asset named '{asset.name}' exists already.") from exc
    return asset


def create_inspection(
    *,
    asset: Asset,
    name: str,
    date: dt.date | None = None,
    notes: str = "",
    user: AbstractBaseUser | None = None,
) -> Inspection:
    """Create an inspection of an asset; the name is unique per asset (409 otherwise)."""
    inspection = Inspection(
        asset=asset,
        name=(name or "").strip(),
        date=date,
        notes=notes or "",
        created_by=actor_or_none(user),
    )
    try:
        inspection.full_clean()
    except ValidationError as exc:
        if Inspection.objects.filter(asset=asset, name=inspection.name).exists():
            raise Conflict(
                f"Asset '{asset.name}' already has an inspection named '{inspection.name}'."
            ) from exc
        raise DomainError(_validation_message(exc)) from exc
    try:
        with transaction.atomic():
            inspection.save()
    except IntegrityError as exc:
        raise Conflict(
            f"Asset '{asset.name}' already has an inspection named '{inspection.name}'."
        ) from exc
    return inspection


def get_or_create_inspection(
    *, asset_name: str, inspection_name: str, user: AbstractBaseUser | None = None
) -> Inspection:
    """The named inspection of the named asset, creating either when missing (imports).

    A missing asset is created only for a supervisor (or the command line, `user=None`);
    anyone else gets Forbidden (403) before anything is written.
    """
    asset_name, inspection_name = (asset_name or "").strip(), (inspection_name or "").strip()
    if not asset_name or not inspection_name:
        raise DomainError("An asset name and an inspection name are both needed.")
    asset = Asset.objects.filter(name=asset_name).first()
    if asset is None:
        try:
            asset = create_asset(name=asset_name, user=user)
        except Conflict:
            asset = Asset.objects.get(name=asset_name)
    inspection = Inspection.objects.filter(asset=asset, name=inspection_name).first()
    if inspection is None:
        try:
            inspection = create_inspection(asset=asset, name=inspection_name, user=user)
        except Conflict:
            inspection = Inspection.objects.get(asset=asset, name=inspection_name)
    return inspection


def _check_fields(fields: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise DomainError(
            f"An {what}'s {', '.join(unknown)} cannot be changed here; "
            f"editable fields: {', '.join(sorted(allowed))}."
        )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _apply_edit(obj: Asset | Inspection, fields: dict[str, Any], *, text_field: str) -> None:
    """Set edited fields on the row: the name stripped, a cleared `text_field` as ''."""
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip()
    if text_field in fields:
        fields[text_field] = fields[text_field] or ""
    for field, value in fields.items():
        setattr(obj, field, value)


def _save_edit(
    obj: Asset | Inspection, fields: dict[str, Any], *, name_taken: bool, conflict: str
) -> None:
    """Validate and save an edited row; a name in use (checked or raced) is a Conflict (409)."""
    if name_taken:
        raise Conflict(conflict)
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise DomainError(_validation_message(exc)) from exc
    try:
        with transaction.atomic():
            obj.save(update_fields=sorted(fields) or None)
    except IntegrityError as exc:
        raise Conflict(conflict) from exc


def update_asset(*, asset: Asset, **fields: Any) -> Asset:
    """Change an asset's name, kind or description; a name in use is a Conflict (409)."""
    _check_fields(fields, ASSET_FIELDS, "asset")
    _apply_edit(asset, fields, text_field="description")
    taken = "name" in fields and Asset.objects.filter(name=asset.name).exclude(pk=asset.pk).exists()
    _save_edit(
        asset, fields, name_taken=taken, conflict=f"An asset named '{asset.name}' exists already."
    )
    return asset


def delete_asset(*, asset: Asset) -> None:
    """Delete an asset with no inspections; one that still has any is a Conflict (409).

    Refusing (instead of cascading) means a click never loses photos, labels or
    an inspection's notes: they are deleted, one by one, on purpose first.
    """
    with transaction.atomic():
        inspections = Inspection.objects.filter(asset=asset).count()
        photos = Photo.objects.filter(inspection__asset=asset).count()
        if inspections:
            raise Conflict(
                f"Asset '{asset.name}' still has {_plural(photos, 'photo')} in "
                f"{_plural(inspections, 'inspection')}; only an asset with no inspections "
                "can be deleted.",
                photo_count=photos,
                inspection_count=inspections,
            )
        try:
            asset.delete()
        except ProtectedError as exc:  # an inspection created meanwhile
            raise Conflict(f"Asset '{asset.name}' gained an inspection; not deleted.") from exc
    log.info("asset %r deleted", asset.name)


def update_inspection(*, inspection: Inspection, **fields: Any) -> Inspection:
    """Change an inspection's name, date or notes; the name stays unique per asset (409)."""
    _check_fields(fields, INSPECTION_FIELDS, "inspection")
    _apply_edit(inspection, fields, text_field="notes")
    taken = (
        "name" in fields
        and Inspection.objects.filter(asset_id=inspection.asset_id, name=inspection.name)
        .exclude(pk=inspection.pk)
        .exists()
    )
    _save_edit(
        inspection,
        fields,
        name_taken=taken,
        conflict=f"Asset '{inspection.asset.name}' already has an inspection named "
        f"'{inspection.name}'.",
    )
    return inspection


def delete_inspection(*, inspection: Inspection) -> None:
    """Delete an inspection with no photos; one that still has photos is a Conflict (409)."""
    label = str(inspection)
    with transaction.atomic():
        photos = Photo.objects.filter(inspection=inspection).count()
        if photos:
            raise Conflict(
                f"Inspection '{label}' still has {_plural(photos, 'photo')}; "
                "only an empty inspection can be deleted.",
                photo_count=photos,
            )
        try:
            inspection.delete()
        except ProtectedError as exc:  # a photo uploaded meanwhile
            raise Conflict(f"Inspection '{label}' gained a photo; not deleted.") from exc
    log.info("inspection %r deleted", label)
