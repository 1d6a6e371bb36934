"""Assets and the inspections made of them."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from inspection.errors import Conflict, DomainError
from inspection.models import Asset, Inspection
from inspection.services.history import actor_or_none


def _validation_message(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def create_asset(*, name: str, kind: str = Asset.Kind.OTHER, description: str = "") -> Asset:
    """Create an asset; a name in use is a Conflict (409), a bad field a 400."""
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
    """The named inspection of the named asset, creating either when missing (imports)."""
    asset_name, inspection_name = (asset_name or "").strip(), (inspection_name or "").strip()
    if not asset_name or not inspection_name:
        raise DomainError("An asset name and an inspection name are both needed.")
    asset = Asset.objects.filter(name=asset_name).first()
    if asset is None:
        try:
            asset = create_asset(name=asset_name)
        except Conflict:
            asset = Asset.objects.get(name=asset_name)
    inspection = Inspection.objects.filter(asset=asset, name=inspection_name).first()
    if inspection is None:
        try:
            inspection = create_inspection(asset=asset, name=inspection_name, user=user)
        except Conflict:
            inspection = Inspection.objects.get(asset=asset, name=inspection_name)
    return inspection
