"""`manage.py import_voc` and `export_voc`: real runs, and clear errors for bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from inspection.models import Box, Inspection, Photo, PhotoEvent
from inspection.services.catalog import create_asset, create_inspection
from ml.voc import VocAnnotation, VocBox, to_xml_bytes
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def labelimg_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("labelimg")
    (folder / "rust").mkdir()
    (folder / "rust" / "a.jpg").write_bytes(jpeg_bytes(60, 40, (200, 10, 10)))
    ann = VocAnnotation(
        filename="a.jpg", width=60, height=40, boxes=[VocBox(2, 3, 30, 20), VocBox(31, 5, 59, 39)]
    )
    (folder / "rust" / "a.xml").write_bytes(to_xml_bytes(ann))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return folder


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_then_export_by_name(labelimg_folder, tmp_path):
    out, err = run("import_voc", str(labelimg_folder), "--inspection", "May", "--asset", "Tank 3")
    assert "1 photos, 2 boxes, 1 verdicts" in out and "1 skipped" in out
    assert "broken.jpg" in err
    inspection = Inspection.objects.get(name="May", asset__name="Tank 3")
    assert inspection.photos.count() == 1 and Box.objects.count() == 2

    # --inspection alone finds the existing inspection.
    out, _ = run("import_voc", str(labelimg_folder), "--inspection", "May")
    assert "0 photos" in out and "1 duplicates" in out
    assert Inspection.objects.count() == 1

    target = tmp_path / "may.zip"
    out, _ = run("export_voc", "--out", str(target), "--inspection", "May")
    assert "1 photos, 2 boxes" in out
    with zipfile.ZipFile(target) as zf:
        assert "JPEGImages/a.jpg" in zf.namelist() and "Annotations/a.xml" in zf.namelist()
    out, _ = run("export_voc", "--out", str(tmp_path / "all.zip"))
    assert "1 photos" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["import_voc", "/no/such/folder"], "no such folder or file"),
        (["export_voc", "--out", "x.tar"], "must be a .zip"),
        (["export_voc", "--out", "/no/such/dir/x.zip"], "no such folder"),
        (["export_voc", "--out", "OUT/x.zip", "--inspection", "Nope"], "No inspection named"),
        (["export_voc", "--out", "OUT/x.zip", "--asset", "Nope"], "No asset named"),
    ],
)
def test_bad_input_is_a_command_error(args, needle, tmp_path):
    args = [a.replace("OUT", str(tmp_path)) for a in args]
    with pytest.raises(CommandError) as info:
        run(*args)
    assert needle in str(info.value)


def test_bad_zip_and_unsafe_zip_are_command_errors(tmp_path):
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    with pytest.raises(CommandError, match="not a zip archive"):
        run("import_voc", str(tmp_path / "junk.zip"))
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../../etc/evil.jpg", jpeg_bytes())
    with pytest.raises(CommandError, match="Unsafe path"):
        run("import_voc", str(tmp_path / "evil.zip"))
    assert not Photo.objects.exists()


def test_ambiguous_inspection_name_asks_for_the_asset(tmp_path, labelimg_folder):
    for name in ("Hull A", "Hull B"):
        create_inspection(asset=create_asset(name=name), name="2026")
    with pytest.raises(CommandError, match="Hull A, Hull B"):
        run("export_voc", "--out", str(tmp_path / "x.zip"), "--inspection", "2026")
    with pytest.raises(CommandError, match="--asset"):
        run("import_voc", str(labelimg_folder), "--inspection", "2026")


def test_command_line_error_is_one_line_without_traceback(tmp_path):
    env = {**os.environ, "RUSTWATCH_VAR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "manage.py", "import_voc", str(tmp_path / "missing")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "CommandError:" in result.stderr and "no such folder or file" in result.stderr


def test_import_as_a_user_follows_their_role(labelimg_folder, inspector, supervisor):
    # Only a supervisor's import creates a missing asset; the operator (no --user) may too.
    args = ("import_voc", str(labelimg_folder), "--inspection", "May", "--asset", "Pier 4")
    with pytest.raises(CommandError, match="only supervisors create assets"):
        run(*args, "--user", inspector.username)
    assert not Inspection.objects.exists() and not Photo.objects.exists()
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run(*args, "--user", "ghost")
    out, _ = run(*args, "--user", supervisor.username)
    assert "1 photos" in out
    assert {e.actor for e in PhotoEvent.objects.filter(action="import")} == {supervisor}
    out, _ = run(
        "import_voc",
        str(labelimg_folder),
        "--inspection",
        "June",
        "--asset",
        "Pier 4",
        "--user",
        inspector.username,
    )
    assert "0 photos" in out and "1 duplicates" in out  # into the now-known asset: allowed


def test_export_and_import_in_another_format(labelimg_folder, tmp_path):
    run("import_voc", str(labelimg_folder), "--inspection", "May", "--asset", "Tank 3")
    target = tmp_path / "may-yolo.zip"
    out, _ = run("export_voc", "--out", str(target), "--format", "yolo")
    assert "(yolo): 1 photos, 2 boxes" in out
    Photo.objects.all().delete()
    out, _ = run("import_voc", str(target), "--format", "yolo", "--inspection", "May")
    assert "1 photos, 2 boxes" in out
    with pytest.raises(CommandError, match="invalid choice: 'csv'"):
        run("export_voc", "--out", str(target), "--format", "csv")
