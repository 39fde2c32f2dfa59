"""safe_display_name, the module's purity (no Django), and PDFium under concurrent threads."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bad_files as bf
import pypdfium2 as pdfium
import pytest

from quire.documents import ingest
from quire.documents.ingest import MAX_DISPLAY_NAME, decode_upload, safe_display_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "filename,expected",
    [
        ("página_№3 — 📜.tiff", "página_№3 — 📜.tiff"),
        ("Cafe\u0301.png", "Café.png"),  # NFC
        ("C:\\Users\\me\\Desktop\\scan.jpg", "scan.jpg"),
        ("dir/sub/", "upload"),
        ("", "upload"),
        (None, "upload"),
        (b"caf\xc3\xa9-\xff.png", "café-\ufffd.png"),
        ("tab\tand\rreturn.png", "tabandreturn.png"),
        ("bad\udcff.png", "bad.png"),  # lone surrogate from an undecodable name
        ("\u2067evil\u2069.png", "evil.png"),
    ],
)
def test_safe_display_name(filename, expected):
    assert safe_display_name(filename) == expected


def test_safe_display_name_caps_length_and_keeps_the_extension():
    name = safe_display_name("ä" * 1000 + ".jpeg")
    assert len(name) <= MAX_DISPLAY_NAME and name.endswith("….jpeg")
    assert len(safe_display_name("x" * 1000)) == MAX_DISPLAY_NAME


def test_ingest_module_does_not_load_django():
    code = (
        "import sys; sys.path.insert(0, 'platform'); import quire.documents.ingest; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', "
        "'torch', 'ml')); print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_pdfium_call_runs_under_the_lock(monkeypatch):
    # PDFium is not thread-safe, not even across documents (pypdfium2 docs, "Incompatibility
    # with Threading"): ingest must hold its lock while opening, rendering and closing.
    seen = []

    def guarded(original):
        def call(*args, **kwargs):
            seen.append(ingest._PDFIUM_LOCK.locked())
            return original(*args, **kwargs)
        return call

    monkeypatch.setattr(pdfium, "PdfDocument", guarded(pdfium.PdfDocument))
    for name in ("render", "get_size", "close"):
        monkeypatch.setattr(pdfium.PdfPage, name, guarded(getattr(pdfium.PdfPage, name)))
    assert len(decode_upload(bf.pdf_pages(2), "t.pdf")) == 2
    assert len(seen) >= 7 and all(seen)


def test_pdfs_decode_from_many_threads_at_once():
    # Concurrent callers get correct pages (the lock neither deadlocks nor mixes documents).
    data = bf.pdf_pages(3)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: decode_upload(data, "t.pdf"), range(12)))
    assert all(len(pages) == 3 and pages[1].gray[90, 100] == 0 for pages in results)
