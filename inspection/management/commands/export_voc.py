"""`manage.py export_voc --out FILE.zip [--format voc|coco|yolo] [--inspection] [--asset]`."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inspection.errors import DomainError
from inspection.models import Asset, Inspection
from inspection.services.dataset_io import FORMATS, export_dataset


class Command(BaseCommand):
    help = (
        "Export photos and their human/accepted boxes as a zip: Pascal VOC in CVAT's layout "
        "(default), COCO JSON (--format coco) or Ultralytics YOLO (--format yolo); one "
        "inspection, one asset or everything."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="the .zip file to write")
        parser.add_argument("--format", choices=FORMATS, default="voc", help="default: voc")
        parser.add_argument("--inspection", help="only this inspection")
        parser.add_argument("--asset", help="only this asset (or the asset of --inspection)")

    def handle(
        self,
        *args,
        out: str,
        inspection: str | None,
        asset: str | None,
        format: str = "voc",
        **options,
    ) -> None:
        target = Path(out)
        if target.suffix.lower() != ".zip":
            raise CommandError(f"{target}: the output must be a .zip file.")
        if target.exists() and target.is_dir():
            raise CommandError(f"{target}: is a folder, not a file.")
        if not target.parent.exists():
            raise CommandError(f"{target.parent}: no such folder.")
        asset_obj = None
        if asset:
            asset_obj = Asset.objects.filter(name=asset).first()
            if asset_obj is None:
                raise CommandError(f"No asset named '{asset}'.")
        inspection_obj = None
        if inspection:
            matches = Inspection.objects.filter(name=inspection).select_related("asset")
            if asset_obj is not None:
                matches = matches.filter(asset=asset_obj)
            found = list(matches)
            if not found:
                raise CommandError(f"No inspection named '{inspection}'.")
            if len(found) > 1:
                assets = ", ".join(sorted(i.asset.name for i in found))
                raise CommandError(
                    f"Several assets have an inspection named '{inspection}' ({assets}); "
                    "say which with --asset."
                )
            inspection_obj = found[0]
        try:
            report = export_dataset(
                target, format=format, inspection=inspection_obj, asset=asset_obj
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        except OSError as exc:
            raise CommandError(f"{target}: cannot write: {exc.strerror or exc}") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {target} ({format}): {report.photos} photos, {report.boxes} boxes."
            )
        )
