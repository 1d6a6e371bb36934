"""`manage.py check_voc [--repair]`: the XML beside each photo against its rows."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from inspection.models import Box, Photo
from inspection.services.boxes import save_boxes
from inspection.services.photos import ingest_photo
from inspection.services.voc_files import voc_path
from ml.voc import read_voc
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


def check(*args: str) -> tuple[int, str]:
    """Run the command; (exit status, everything it wrote). manage.py exits with
    CommandError.returncode; tests/integration/test_concurrent_saves.py runs the real one."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("check_voc", *args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code = exc.returncode
        err.write(str(exc))
    return code, out.getvalue() + err.getvalue()


@pytest.fixture
def photos(inspection, inspector) -> list[Photo]:
    made = []
    for i in range(3):
        p = ingest_photo(
            inspection=inspection,
            file=io.BytesIO(jpeg_bytes(80, 60, color=(40 * i, 90, 10))),
            filename=f"p{i}.jpg",
            user=inspector,
        )
        made.append(
            save_boxes(
                photo=p,
                boxes=[{"xmin": 1 + i, "ymin": 1, "xmax": 30, "ymax": 20}],
                user=inspector,
                expected_version=1,
            )
        )
    return made


def test_clean_media_is_exit_0(photos):
    code, text = check()
    assert code == 0, text
    assert "3 photos checked: 0 missing, 0 disagreeing, 0 XML of no photo." in text


def test_finds_each_kind_of_problem_and_repairs_it_from_the_rows(photos, settings):
    missing, stale, garbled = photos
    voc_path(missing).unlink()
    # The rows change behind the file's back (as a crash between the two would leave it).
    Box.objects.filter(photo=stale).update(xmax=70)
    voc_path(garbled).write_bytes(b"<annotation><size>")
    orphan = Path(settings.MEDIA_ROOT) / "photos" / "ab" / ("ab" + "0" * 62 + ".xml")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(voc_path(stale).read_bytes())

    code, text = check()
    assert code == 1
    assert f"photo {missing.pk}: its XML is missing" in text
    assert f"photo {stale.pk}: its XML disagrees with its rows" in text
    assert f"photo {garbled.pk}: its XML disagrees with its rows" in text
    assert f"{orphan}: XML of no photo" in text
    assert "4 problem(s) remain" in text and "--repair" in text
    assert not voc_path(missing).exists() and orphan.exists()  # a check changes nothing

    code, text = check("--repair")
    assert code == 0, text
    assert f"repaired: photo {missing.pk}: XML missing, rewritten from its rows" in text
    assert f"repaired: photo {stale.pk}: XML differs, rewritten from its rows" in text
    assert f"repaired: {orphan}: the XML of no photo, removed" in text
    assert "4 repaired, 0 not" in text
    assert [b.xmax for b in read_voc(voc_path(stale)).boxes] == [70]
    assert [b.xmin for b in read_voc(voc_path(missing)).boxes] == [1]
    assert read_voc(voc_path(garbled)).boxes[0].xmin == 3
    assert not orphan.exists()
    assert check()[0] == 0


def test_verified_flag_counts_as_disagreement(photos):
    Photo.objects.filter(pk=photos[0].pk).update(verified=True)
    code, text = check()
    assert code == 1 and f"photo {photos[0].pk}: its XML disagrees" in text


def test_temp_files_of_a_write_in_progress_are_not_orphans(photos, settings):
    folder = voc_path(photos[0]).parent
    (folder / f".{voc_path(photos[0]).name}.x1y2.tmp").write_bytes(b"half")
    assert check()[0] == 0


def test_failed_repair_is_reported_and_exit_1(photos, monkeypatch):
    from inspection.services import voc_files

    voc_path(photos[0]).unlink()

    def boom(photo):
        raise OSError("read-only file system")

    monkeypatch.setattr(voc_files, "write_photo_voc", boom)
    code, text = check("--repair")
    assert code == 1
    assert f"NOT repaired: photo {photos[0].pk}: XML missing" in text
    assert "read-only file system" in text and "1 problem(s) remain" in text
