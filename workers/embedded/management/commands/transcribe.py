"""`python manage.py transcribe FILE [FILE...] [--format txt|json|page|alto] [--out DIR]`.

Embedded mode: decodes each file with the upload ingest, runs the page pipeline in this process
(no broker, no database rows) and prints the text, or writes one export per page into DIR
(`<file stem>[-p<N>].<ext>`). The exports are the same builders the API uses. Exit status 1 when
any file or page could not be transcribed (the others are still done).
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from quire.documents.exports import FORMATS, export_page, render
from quire.documents.ingest import IngestError, decode_upload
from workers.transcription import load_pipeline


class Command(BaseCommand):
    help = "Transcribe image/PDF files in-process and print the text or write PAGE XML/ALTO/JSON."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path, help="PNG, JPEG, TIFF, WebP, BMP, GIF or PDF files")
        parser.add_argument("--format", choices=sorted(FORMATS), default="txt", help="output format (default txt)")
        parser.add_argument("--out", type=Path, help="folder for one output file per page (default: stdout)")

    def handle(self, *args, files: list[Path], format: str, out: Path | None, **options):
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        pipeline = load_pipeline()
        failures = 0
        for path in files:
            try:
                data = path.read_bytes()
                frames = decode_upload(data, path.name, max_pixels=settings.QUIRE_MAX_PIXELS,
                                       pdf_dpi=settings.QUIRE_PDF_DPI)
            except (OSError, IngestError) as exc:
                self.stderr.write(f"{path}: {getattr(exc, 'message', exc)}")
                failures += 1
                continue
            multi = len(frames) > 1
            for frame in frames:
                if frame.error is not None:
                    self.stderr.write(f"{path} page {frame.frame_index + 1}: {frame.error.message}")
                    failures += 1
                    continue
                result = pipeline.run(frame.gray)
                page = export_page(result, image_filename=path.name, page_number=frame.frame_index + 1)
                self._emit(render(page, format), path, frame.frame_index, multi, format, out)
        if failures:
            raise CommandError(f"{failures} file(s) or page(s) could not be transcribed")

    def _emit(self, data: bytes, path: Path, index: int, multi: bool, fmt: str, out: Path | None) -> None:
        if out is None:
            if multi:
                self.stdout.write(f"== {path.name} page {index + 1} ==")
            self.stdout.write(data.decode("utf-8"), ending="" if data.endswith(b"\n") else "\n")
            return
        stem = f"{path.stem}-p{index + 1}" if multi else path.stem
        target = out / f"{stem}.{FORMATS[fmt][1]}"
        target.write_bytes(data)
        self.stderr.write(f"wrote {target}")
