"""Assets and inspections: creation, edits, deletion, conflicts, get-or-create for imports."""

from __future__ import annotations

import datetime as dt

import pytest

from inspection.errors import Conflict, DomainError, Forbidden
from inspection.models import Asset, Inspection, Photo
from inspection.services.catalog import (
    create_asset,
    create_inspection,
    delete_asset,
    delete_inspection,
    get_or_create_inspection,
    update_asset,
    update_inspection,
)

pytestmark = pytest.mark.django_db


def test_create_asset_and_inspection(inspector):
    asset = create_asset(name="  Bridge 4 ", kind="bridge", description="steel truss")
    assert (asset.name, asset.kind) == ("Bridge 4", "bridge")
    insp = create_inspection(asset=asset, name="May", date=dt.date(2026, 5, 1), user=inspector)
    assert insp.created_by == inspector and insp.asset == asset


def test_duplicate_names_are_conflicts(asset):
    with pytest.raises(Conflict) as info:
        create_asset(name=asset.name)
    assert info.value.status == 409 and asset.name in info.value.message
    create_inspection(asset=asset, name="A")
    with pytest.raises(Conflict):
        create_inspection(asset=asset, name="A")
    other = create_asset(name="Other")
    assert create_inspection(asset=other, name="A").pk  # unique per asset only


def test_bad_fields_are_400():
    with pytest.raises(DomainError) as info:
        create_asset(name="")
    assert info.value.status == 400 and "name" in info.value.message
    with pytest.raises(DomainError) as info:
        create_asset(name="X", kind="spaceship")
    assert info.value.status == 400 and "kind" in info.value.message


def test_only_supervisors_create_assets_on_every_path(inspector, supervisor):
    with pytest.raises(Forbidden, match="only supervisors create assets"):
        create_asset(name="Pier 4", user=inspector)
    with pytest.raises(Forbidden):
        get_or_create_inspection(asset_name="Pier 4", inspection_name="May", user=inspector)
    assert not Asset.objects.exists() and not Inspection.objects.exists()
    assert create_asset(name="Pier 4", user=supervisor).name == "Pier 4"
    # The asset exists now: an inspector may add inspections of it.
    insp = get_or_create_inspection(asset_name="Pier 4", inspection_name="May", user=inspector)
    assert insp.asset.name == "Pier 4" and insp.created_by == inspector
    assert create_asset(name="Tank 1").name == "Tank 1"  # user=None: the command line


def test_get_or_create_inspection_is_idempotent():
    first = get_or_create_inspection(asset_name="Tank 2", inspection_name="import")
    again = get_or_create_inspection(asset_name="Tank 2", inspection_name="import")
    assert first.pk == again.pk
    assert Asset.objects.count() == 1 and Inspection.objects.count() == 1
    with pytest.raises(DomainError):
        get_or_create_inspection(asset_name="", inspection_name="x")


def test_update_asset_and_inspection(asset, inspection):
    update_asset(asset=asset, name=" Hull 8 ", description=None)
    asset.refresh_from_db()
    assert (asset.name, asset.kind, asset.description) == ("Hull 8", "hull", "")
    update_inspection(inspection=inspection, date=dt.date(2026, 6, 1), notes="bow")
    inspection.refresh_from_db()
    assert inspection.date == dt.date(2026, 6, 1) and inspection.notes == "bow"
    assert inspection.name == "2026 dry dock"


def test_updates_keep_names_unique(asset, inspection):
    other = create_asset(name="Other")
    with pytest.raises(Conflict) as info:
        update_asset(asset=other, name=asset.name)
    assert info.value.status == 409 and asset.name in info.value.message
    assert Asset.objects.get(pk=other.pk).name == "Other"
    second = create_inspection(asset=asset, name="B")
    with pytest.raises(Conflict):
        update_inspection(inspection=second, name=inspection.name)
    assert Inspection.objects.get(pk=second.pk).name == "B"
    assert update_asset(asset=asset, name=asset.name).pk == asset.pk  # its own name is fine


def test_updates_refuse_bad_and_unknown_fields(asset, inspection):
    for call in (
        lambda: update_asset(asset=asset, kind="spaceship"),
        lambda: update_asset(asset=asset, name=""),
        lambda: update_asset(asset=asset, created_at=None),
        lambda: update_inspection(inspection=inspection, asset=create_asset(name="Z")),
        lambda: update_inspection(inspection=inspection, name="x" * 201),
    ):
        with pytest.raises(DomainError) as info:
            call()
        assert info.value.status == 400 and info.value.message
    assert Inspection.objects.get(pk=inspection.pk).asset_id == asset.pk


def test_delete_refuses_while_photos_remain(asset, inspection, inspector):
    from tests.api.conftest import ingest

    for seed in (1, 2, 3):
        ingest(inspection, inspector, name=f"{seed}.jpg", seed=seed)
    with pytest.raises(Conflict) as info:
        delete_inspection(inspection=inspection)
    assert "3 photos" in info.value.message and info.value.extra["photo_count"] == 3
    with pytest.raises(Conflict) as info:
        delete_asset(asset=asset)
    assert "3 photos in 1 inspection" in info.value.message
    assert Photo.objects.count() == 3 and Inspection.objects.filter(pk=inspection.pk).exists()


def test_delete_when_empty(asset, inspection):
    delete_inspection(inspection=inspection)
    assert not Inspection.objects.exists()
    delete_asset(asset=asset)
    assert not Asset.objects.exists()
