"""Assets and inspections: creation, conflicts, get-or-create for imports."""

from __future__ import annotations

import datetime as dt

import pytest

from inspection.errors import Conflict, DomainError
from inspection.models import Asset, Inspection
from inspection.services.catalog import (
    create_asset,
    create_inspection,
    get_or_create_inspection,
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


def test_get_or_create_inspection_is_idempotent():
    first = get_or_create_inspection(asset_name="Tank 2", inspection_name="import")
    again = get_or_create_inspection(asset_name="Tank 2", inspection_name="import")
    assert first.pk == again.pk
    assert Asset.objects.count() == 1 and Inspection.objects.count() == 1
    with pytest.raises(DomainError):
        get_or_create_inspection(asset_name="", inspection_name="x")
