"""`manage.py import_voc PATH [--format voc|coco|yolo] [--inspection] [--asset] [--user]`."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inspection.errors import DomainError
from inspection.models import Inspection
from inspection.services.dataset_io import FORMATS, import_dataset


class Command(BaseCommand):
    help = (
        "Import a folder or zip of annotated photos: a labelImg folder, a VOC tree or CVAT "
        "Pascal VOC 1.1 zip (default; rust/ and norust/ folders give verdicts), COCO JSON "
        "with its images (--format coco) or Ultralytics YOLO (--format yolo)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="folder or .zip to import")
        parser.add_argument("--format", choices=FORMATS, default="voc", help="default: voc")
        parser.add_argument("--inspection", help="inspection name (created if missing)")
        parser.add_argument("--asset", help="asset name (created if missing; default 'Imports')")
        parser.add_argument(
            "--user",
            help="import as this user: history names them and their role's rules apply "
            "(only a supervisor's import creates a missing asset); default: the operator",
        )

    def handle(
        self,
        *args,
        path: str,
        inspection: str | None,
        asset: str | None,
        user: str | None = None,
        format: str = "voc",
        **options,
    ) -> None:
        source = Path(path)
        if not source.exists():
            raise CommandError(f"{source}: no such folder or file.")
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"No user named '{user}'.")
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
            report = import_dataset(
                source,
                format=format,
                inspection=target,
                inspection_name=inspection,
                asset_name=asset,
                user=actor,
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
