"""`python manage.py check_voc [--repair]`: do the XML files beside the photos match the rows?

Finds photos whose labelImg XML is missing or disagrees with their rows (boxes,
size, verified) and XML files that belong to no photo. `--repair` rewrites
the XML from the rows and removes XML of no photo, and says what it did. The
exit status is 1 while problems remain, so a script or a test can rely on it.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inspection.services.voc_files import check_voc_files


class Command(BaseCommand):
    help = (
        "Check that every photo's labelImg XML matches its rows, and find XML of no photo; "
        "--repair rewrites them from the rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--repair",
            action="store_true",
            help="rewrite missing or disagreeing XML from the rows; remove XML of no photo",
        )

    def handle(self, *args, repair: bool, **options) -> None:
        report = check_voc_files(repair=repair)
        for pk in report.missing:
            self.stdout.write(f"photo {pk}: its XML is missing")
        for pk in report.differing:
            self.stdout.write(f"photo {pk}: its XML disagrees with its rows")
        for path in report.orphans:
            self.stdout.write(f"{path}: XML of no photo")
        for line in report.repaired:
            self.stdout.write(f"repaired: {line}")
        for line in report.failed:
            self.stderr.write(f"NOT repaired: {line}")
        found = len(report.missing) + len(report.differing) + len(report.orphans)
        summary = (
            f"{report.photos} photos checked: {len(report.missing)} missing, "
            f"{len(report.differing)} disagreeing, {len(report.orphans)} XML of no photo"
        )
        if repair and found:
            summary += f"; {len(report.repaired)} repaired, {len(report.failed)} not"
        self.stdout.write(summary + ".")
        if report.problems:
            hint = "" if repair else " Run with --repair to rewrite them from the rows."
            raise CommandError(f"{report.problems} problem(s) remain.{hint}", returncode=1)
