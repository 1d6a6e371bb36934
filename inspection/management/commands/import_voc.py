"""`python manage.py import_voc PATH [--inspection NAME] [--asset NAME]`: load labelImg data."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inspection.errors import DomainError
from inspection.models import Inspection
from inspection.services.voc_io import import_voc


class Command(BaseCommand):
    help = (
        "Import a labelImg folder, a VOC tree or a zip of them: images with same-stem XML "
        "become photos with boxes; folders named rust/ and norust/ give verdicts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="folder or .zip to import")
        parser.add_argument("--inspection", help="inspection name (created if missing)")
        parser.add_argument("--asset", help="asset name (created if missing; default 'Imports')")

    def handle(
        self, *args, path: str, inspection: str | None, asset: str | None, **options
    ) -> None:
        source = Path(path)
        if not source.exists():
            raise CommandError(f"{source}: no such folder or file.")
        target = None
        if inspection and not asset:
            matches = list(Inspection.objects.filter(name=inspection).select_related("asset"))
            if len(matches) > 1:
                assets = ", ".join(sorted(m.asset.name for m in matches))
                raise CommandError(
                    f"Several assets have an inspection named '{inspection}' ({assets}); "
                    "say which with --asset."
                )
            target = matches[0] if matches else None
        try:
            report = import_voc(
                source,
                inspection=target,
                inspection_name=inspection,
                asset_name=asset,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        except OSError as exc:
            raise CommandError(f"{source}: cannot read: {exc.strerror or exc}") from exc
        target = Inspection.objects.select_related("asset").get(pk=report.inspection_id)
        for line in report.duplicate_files:
            self.stdout.write(f"duplicate: {line}")
        for line in report.notes:
            self.stdout.write(f"note: {line}")
        for line in report.errors:
            self.stderr.write(f"skipped: {line}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported into '{target}': {report.photos_created} photos, "
                f"{report.boxes} boxes, {report.verdicts} verdicts, "
                f"{report.duplicates} duplicates, {report.near_duplicates} near-duplicates "
                f"linked, {len(report.errors)} skipped."
            )
        )
