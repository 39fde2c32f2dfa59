"""`python manage.py export_ground_truth OUT_DIR [--user NAME]`: the corrected lines as a
training set, line crops + `lines.jsonl` in the format of ../shared/data (workers.training)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from quire.registry.services import ground_truth_lines
from workers.training import export_ground_truth


class Command(BaseCommand):
    help = "Export the ground-truth lines as line crops + lines.jsonl."

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path)
        parser.add_argument("--user", help="only lines of this user's documents")

    def handle(self, *args, out: Path, user: str | None, **options):
        lines = ground_truth_lines().order_by("page_id", "index")
        if user:
            lines = lines.filter(page__document__owner__username=user)
        records = export_ground_truth(lines, out)
        if not records:
            raise CommandError("no ground-truth line to export")
        self.stdout.write(f"{len(records)} lines written to {out / 'lines.jsonl'}")
