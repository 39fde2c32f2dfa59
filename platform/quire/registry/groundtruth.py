"""Import ground truth: a page image with its PAGE XML (2013/2019) or ALTO (v2–v4) transcription
becomes a Page whose Line rows are marked as ground truth (no transcription job is queued, so the
model never overwrites them).

Coordinates are read in the XML's pixels and scaled to the normalised page image when their
declared page size differs (e.g. an image whose EXIF rotation or downscaling changed it).
The line-level `TextEquiv/Unicode` (PAGE) or the `String/@CONTENT` words joined by spaces
(ALTO) give the text; lines without text are skipped. Polygons come from PAGE `Coords` /
ALTO `Shape/Polygon` (else the line's box); baselines from PAGE `Baseline` / ALTO `BASELINE`
(points, or ALTO ≤ 3's single y value), else the bottom edge of the box.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from django.db import transaction
from lxml import etree

from quire.documents.models import Document, Line, LineVersion, Page
from quire.documents.storage import original_key, page_image_key, put_bytes
from quire.documents.uploads import PreparedUpload, UploadRejected, prepare_upload

MAX_XML_BYTES = 50 * 1024 * 1024


class GroundTruthError(Exception):
    """The XML is not a readable PAGE or ALTO file, or holds no usable line (HTTP 400)."""


@dataclass
class GtLine:
    """One ground-truth line in the XML's pixels."""

    text: str
    polygon: list[list[float]]
    baseline: list[list[float]]


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _children(el, name: str):
    return [c for c in el if _local(c.tag) == name]


def _one_line(text: str) -> str:
    """Line text as exports need it: control characters (newlines, tabs, NUL) become spaces,
    runs of whitespace collapse, NFC."""
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return unicodedata.normalize("NFC", " ".join(text.split()))


def _points(text: str | None) -> list[list[float]]:
    """'x,y x,y ...' (PAGE) or 'x y x y ...' (ALTO) → [[x, y], ...]."""
    if not text:
        return []
    values = [float(v) for v in text.replace(",", " ").split()]
    return [[values[i], values[i + 1]] for i in range(0, len(values) - 1, 2)]


def _box(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


def parse(xml: bytes) -> tuple[str, tuple[float, float] | None, list[GtLine]]:
    """(format 'page' | 'alto', declared (width, height) or None, lines in document order).

    Raises GroundTruthError for XML that does not parse or is neither PAGE nor ALTO.
    """
    if len(xml) > MAX_XML_BYTES:
        raise GroundTruthError(f"XML file over {MAX_XML_BYTES} bytes")
    try:
        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    except etree.XMLSyntaxError as exc:
        raise GroundTruthError(f"the XML does not parse: {exc}") from None
    kind = _local(root.tag)
    if kind == "PcGts":
        return ("page", *_parse_page(root))
    if kind == "alto":
        return ("alto", *_parse_alto(root))
    raise GroundTruthError(f"not PAGE XML or ALTO (root element <{kind}>)")


def _num(el, name: str) -> float:
    try:
        return float(el.get(name))
    except (TypeError, ValueError):
        raise GroundTruthError(f"<{_local(el.tag)}> has no numeric {name}") from None


def _parse_page(root) -> tuple[tuple[float, float] | None, list[GtLine]]:
    page = next((el for el in root.iter() if _local(el.tag) == "Page"), None)
    size = (_num(page, "imageWidth"), _num(page, "imageHeight")) if page is not None else None
    lines = []
    for el in root.iter():
        if _local(el.tag) != "TextLine":
            continue
        texts = [u.text or "" for te in _children(el, "TextEquiv") for u in _children(te, "Unicode")]
        coords = next(iter(_children(el, "Coords")), None)
        base = next(iter(_children(el, "Baseline")), None)
        polygon = _points(coords.get("points") if coords is not None else None)
        baseline = _points(base.get("points") if base is not None else None)
        text = _one_line(texts[0] if texts else "")
        if text and len(polygon) >= 3:
            lines.append(GtLine(text, polygon, baseline))
    return size, lines


def _parse_alto(root) -> tuple[tuple[float, float] | None, list[GtLine]]:
    page = next((el for el in root.iter() if _local(el.tag) == "Page"), None)
    size = (_num(page, "WIDTH"), _num(page, "HEIGHT")) if page is not None and page.get("WIDTH") else None
    lines = []
    for el in root.iter():
        if _local(el.tag) != "TextLine":
            continue
        words = [s.get("CONTENT", "") for s in el.iter() if _local(s.tag) == "String"]
        text = _one_line(" ".join(w for w in words if w))
        x, y, w, h = (_num(el, k) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
        shape = next((p for s in _children(el, "Shape") for p in s if _local(p.tag) == "Polygon"), None)
        polygon = _points(shape.get("POINTS")) if shape is not None else _box(x, y, w, h)
        raw = (el.get("BASELINE") or "").strip()
        if raw and len(raw.replace(",", " ").split()) >= 4:
            baseline = _points(raw)
        elif raw:
            baseline = [[x, float(raw)], [x + w, float(raw)]]
        else:
            baseline = [[x, y + h], [x + w, y + h]]
        if text and len(polygon) >= 3:
            lines.append(GtLine(text, polygon, baseline))
    return size, lines


def _scaled(points: list[list[float]], sx: float, sy: float, width: int, height: int) -> list[list[int]]:
    return [[min(width - 1, max(0, round(x * sx))), min(height - 1, max(0, round(y * sy)))] for x, y in points]


def import_page(user, image: bytes, image_name: str, xml: bytes, document: Document | None = None,
                document_name: str | None = None) -> Page:
    """Store `image` as a new page of `document` (created as `document_name` when None) with the
    lines of `xml` as ground truth; returns the Page.

    Raises GroundTruthError (bad XML, no line with text), UploadRejected (image refused by the
    ingest: 400/413/415), StorageUnavailable.
    """
    fmt, size, gt_lines = parse(xml)
    if not gt_lines:
        raise GroundTruthError(f"the {fmt.upper()} file holds no text line with text and coordinates")
    prepared = prepare_upload(user, image, image_name, force=True)
    assert isinstance(prepared, PreparedUpload)
    frame = prepared.frames[0]
    sx = frame.width / size[0] if size and size[0] else 1.0
    sy = frame.height / size[1] if size and size[1] else 1.0
    stored = put_bytes(original_key(user.pk, prepared.sha256, frame.source_format or "img"), prepared.data,
                       overwrite=False)
    with transaction.atomic():
        if document is None:
            document = Document.objects.create(owner=user, name=(document_name or prepared.filename or "ground truth")[:255])
        page = Page.objects.create(document=document, order=document.next_page_order(),
                                   filename=prepared.filename[:255], source_format=frame.source_format,
                                   sha256=prepared.sha256, original=stored, width=frame.width, height=frame.height)
        page.image.name = put_bytes(page_image_key(page.pk), frame.png_bytes)
        page.save(update_fields=["image"])
        for index, gt in enumerate(gt_lines):
            polygon = _scaled(gt.polygon, sx, sy, frame.width, frame.height)
            baseline = _scaled(gt.baseline, sx, sy, frame.width, frame.height)
            xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
            line = Line.objects.create(page=page, index=index, polygon=polygon, baseline=baseline,
                                       bbox=[min(xs), min(ys), max(xs), max(ys)], text=gt.text,
                                       is_ground_truth=True)
            LineVersion.snapshot(line, LineVersion.Source.USER, user=user)
    return page


__all__ = ["GroundTruthError", "UploadRejected", "import_page", "parse"]
