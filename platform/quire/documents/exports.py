"""Exports of a transcribed page: plain text, JSON, PAGE XML 2019 and ALTO 4.

One code path serves the API (Page rows) and the embedded mode (pipeline results): `export_page`
adapts either into an `ExportPage`, and the renderers take only that. XML is built with lxml, so
`&`, `<` and any Unicode are escaped by the serializer; characters that XML 1.0 cannot carry
(C0 controls other than tab/newline) are dropped. Coordinates are integer page pixels, clamped
into the page. Schemas (validated in the tests): PAGE 2019-07-15
(https://github.com/PRImA-Research-Lab/PAGE-XML) and ALTO 4.4 (https://github.com/altoxml/schema).
"""

import io
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from lxml import etree

PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGE_XSD_URL = f"{PAGE_NS}/pagecontent.xsd"
ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
ALTO_XSD_URL = "http://www.loc.gov/alto/v4/alto-4-4.xsd"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XLINK_NS = "http://www.w3.org/1999/xlink"
CREATOR = "Quire"

FORMATS = {  # format → (content type, file extension)
    "txt": ("text/plain; charset=utf-8", "txt"),
    "json": ("application/json", "json"),
    "page": ("application/xml", "page.xml"),
    "alto": ("application/xml", "alto.xml"),
}

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class ExportLine:
    """One line in reading order; geometry in page pixels, confidences in [0, 1]."""

    index: int
    text: str
    confidence: float | None
    polygon: list[list[int]]
    baseline: list[list[int]]
    bbox: list[int]
    char_confidences: list[float] = field(default_factory=list)
    is_ground_truth: bool = False
    printed: bool = False  # printed or typed text (PAGE XML: production="printed")


@dataclass(frozen=True)
class ExportPage:
    """A page ready to export: size in pixels, the image's file name, lines in reading order."""

    width: int
    height: int
    image_filename: str
    lines: list[ExportLine]
    page_number: int = 1
    models: dict = field(default_factory=dict)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


def _get(source, name: str, default=None):
    if isinstance(source, dict):
        return source.get(name, default)
    return getattr(source, name, default)


def _image_filename(source, pk) -> str:
    """The image file the exported coordinates refer to, for PAGE `imageFilename` / ALTO `fileName`.

    A one-frame raster upload (PNG, JPEG, WebP, BMP, GIF, or the first frame of a TIFF) is stored
    in its own pixel grid (after its EXIF orientation, as viewers show it), so the uploaded file's
    name is given: the export then sits beside the archive's own images, as eScriptorium and
    Transkribus import it. A PDF page or a later TIFF frame exists only as the normalised image
    (`GET /api/v1/pages/{id}/image/`): `page-{id}.png`.
    """
    name = _get(source, "filename") or ""
    fmt = _get(source, "source_format") or ""
    if name and fmt and fmt != "pdf" and not _get(source, "frame_index", 0):
        return name
    return f"page-{pk}.png" if pk is not None else "page.png"


def export_page(source, *, image_filename: str | None = None, page_number: int | None = None,
                models: dict | None = None) -> ExportPage:
    """Adapt a `documents.Page` row (lines prefetched), an `ml` PageResult or its `to_dict()`.

    The model versions that produced the lines ({"detector": ..., "recognizer": ...}) are
    `models`, else the source's `models` (a PageResult), else its `models_used` (a Page row
    annotated with its latest succeeded job's `models_used`, see quire.api.views), else {}.

    Lines may be model rows, dataclasses or dicts with the keys of the ml contract
    (text, confidence, polygon, baseline, bbox, char_confidences).
    """
    lines = _get(source, "lines") or []
    if hasattr(lines, "all"):  # a related manager
        lines = lines.all()
    out = []
    for position, line in enumerate(lines):
        index = _get(line, "index")
        out.append(ExportLine(
            index=position if index is None else int(index),
            text=str(_get(line, "text", "") or ""),
            confidence=_get(line, "confidence"),
            polygon=[list(map(int, p)) for p in _get(line, "polygon", []) or []],
            baseline=[list(map(int, p)) for p in _get(line, "baseline", []) or []],
            bbox=[int(v) for v in _get(line, "bbox", []) or []],
            char_confidences=[float(c) for c in _get(line, "char_confidences", []) or []],
            is_ground_truth=bool(_get(line, "is_ground_truth", False)),
            printed=bool(_get(line, "printed", False)),
        ))
    pk = _get(source, "pk")
    return ExportPage(
        width=int(_get(source, "width")),
        height=int(_get(source, "height")),
        image_filename=image_filename or _image_filename(source, pk),
        lines=out,
        page_number=page_number if page_number is not None else int(_get(source, "order", 0) or 0) + 1,
        models=models if models is not None else dict(
            _get(source, "models", None) or _get(source, "models_used", None) or {}),
    )


# --- geometry helpers -------------------------------------------------------------------------

def _clean(text: str) -> str:
    return _XML_INVALID.sub("", text)


def _clamp(points: Iterable[Iterable[int]], page: ExportPage) -> list[tuple[int, int]]:
    return [(min(max(int(x), 0), page.width), min(max(int(y), 0), page.height)) for x, y in points]


def _bbox(line: ExportLine, page: ExportPage) -> tuple[int, int, int, int]:
    """The line's [x0, y0, x1, y1] clamped into the page; from its polygon when no bbox is given."""
    if len(line.bbox) == 4:
        x0, y0, x1, y1 = line.bbox
    else:
        pts = line.polygon or line.baseline or [[0, 0]]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    (x0, y0), (x1, y1) = _clamp([(x0, y0), (x1, y1)], page)
    return x0, y0, max(x1, x0), max(y1, y0)


def _outline(line: ExportLine, page: ExportPage) -> list[tuple[int, int]]:
    """The line polygon (≥ 3 points), or its bbox rectangle when the polygon is degenerate."""
    if len(line.polygon) >= 3:
        return _clamp(line.polygon, page)
    x0, y0, x1, y1 = _bbox(line, page)
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _points(points: list[tuple[int, int]]) -> str:
    return " ".join(f"{x},{y}" for x, y in points)


def _conf(value: float | None) -> str | None:
    return None if value is None else f"{min(max(float(value), 0.0), 1.0):.4f}"


def _timestamp(page: ExportPage) -> str:
    return page.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _union(page: ExportPage) -> tuple[int, int, int, int]:
    boxes = [_bbox(line, page) for line in page.lines]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


# --- renderers --------------------------------------------------------------------------------

def to_txt(page: ExportPage) -> str:
    """The page text: one line per text line, in reading order, newline-terminated."""
    return "".join(f"{line.text}\n" for line in page.lines)


def to_json(page: ExportPage) -> dict:
    """A JSON-serialisable dict: width, height, image, models and the lines with geometry."""
    return {
        "width": page.width,
        "height": page.height,
        "image": page.image_filename,
        "models": page.models,
        "text": to_txt(page),
        "lines": [asdict(line) for line in page.lines],
    }


def to_page_xml(page: ExportPage) -> bytes:
    """PAGE XML 2019-07-15: one TextRegion holding the lines (Coords, Baseline, TextEquiv); each
    model version is a Metadata/MetadataItem of type processingStep (name = kind, value = version)."""
    def E(tag, **attrs):
        return etree.Element(f"{{{PAGE_NS}}}{tag}", {k: v for k, v in attrs.items() if v is not None})

    root = etree.Element(f"{{{PAGE_NS}}}PcGts", nsmap={None: PAGE_NS, "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{PAGE_NS} {PAGE_XSD_URL}")
    meta = etree.SubElement(root, f"{{{PAGE_NS}}}Metadata")
    for tag, text in (("Creator", CREATOR), ("Created", _timestamp(page)), ("LastChange", _timestamp(page))):
        etree.SubElement(meta, f"{{{PAGE_NS}}}{tag}").text = text
    for kind, name in sorted(page.models.items()):  # the model versions that produced the lines
        etree.SubElement(meta, f"{{{PAGE_NS}}}MetadataItem", type="processingStep", name=_clean(str(kind)),
                         value=_clean(str(name)))
    page_el = E("Page", imageFilename=_clean(page.image_filename), imageWidth=str(page.width),
                imageHeight=str(page.height))
    root.append(page_el)
    if page.lines:
        order = etree.SubElement(page_el, f"{{{PAGE_NS}}}ReadingOrder")
        group = etree.SubElement(order, f"{{{PAGE_NS}}}OrderedGroup", id="ro_0")
        etree.SubElement(group, f"{{{PAGE_NS}}}RegionRefIndexed", index="0", regionRef="r_0")
        region = etree.SubElement(page_el, f"{{{PAGE_NS}}}TextRegion", id="r_0", type="paragraph")
        x0, y0, x1, y1 = _union(page)
        region.append(E("Coords", points=_points([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])))
        for line in page.lines:
            line_el = E("TextLine", id=f"l_{line.index}", custom=f"readingOrder {{index:{line.index};}}",
                        production="printed" if line.printed else None)
            line_el.append(E("Coords", points=_points(_outline(line, page))))
            if len(line.baseline) >= 2:
                line_el.append(E("Baseline", points=_points(_clamp(line.baseline, page))))
            equiv = E("TextEquiv", conf=_conf(line.confidence),
                      dataType="ground truth" if line.is_ground_truth else None)
            etree.SubElement(equiv, f"{{{PAGE_NS}}}Unicode").text = _clean(line.text)
            line_el.append(equiv)
            region.append(line_el)
        equiv = etree.SubElement(region, f"{{{PAGE_NS}}}TextEquiv")
        etree.SubElement(equiv, f"{{{PAGE_NS}}}Unicode").text = _clean(to_txt(page).rstrip("\n"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _words(line: ExportLine) -> list[tuple[str, float | None]]:
    """Whitespace-separated words with a word confidence (mean of its characters' confidences)."""
    text = _clean(line.text)
    per_char = line.char_confidences if len(line.char_confidences) == len(text) else None
    words = []
    for match in re.finditer(r"\S+", text):
        if per_char:
            chunk = per_char[match.start():match.end()]
            words.append((match.group(), sum(chunk) / len(chunk)))
        else:
            words.append((match.group(), line.confidence))
    return words or [("", line.confidence)]


def to_alto(page: ExportPage) -> bytes:
    """ALTO 4.4 in pixels: one TextBlock; each TextLine has its polygon, baseline and words."""
    def E(tag, parent=None, **attrs):
        attrs = {k: str(v) for k, v in attrs.items() if v is not None}
        tag = f"{{{ALTO_NS}}}{tag}"
        return etree.Element(tag, attrs) if parent is None else etree.SubElement(parent, tag, attrs)

    root = etree.Element(f"{{{ALTO_NS}}}alto", nsmap={None: ALTO_NS, "xlink": XLINK_NS, "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{ALTO_NS} {ALTO_XSD_URL}")
    root.set("SCHEMAVERSION", "4.4")
    desc = E("Description", root)
    E("MeasurementUnit", desc).text = "pixel"
    E("fileName", E("sourceImageInformation", desc)).text = _clean(page.image_filename)
    step = E("Processing", desc, ID="proc_0")
    E("processingCategory", step).text = "contentGeneration"
    E("processingDateTime", step).text = _timestamp(page)
    for kind, name in sorted(page.models.items()):
        E("processingStepDescription", step).text = _clean(f"{kind}: {name}")
    E("softwareName", E("processingSoftware", step)).text = CREATOR

    page_el = E("Page", E("Layout", root), ID="page_0", PHYSICAL_IMG_NR=page.page_number,
                WIDTH=page.width, HEIGHT=page.height, PROCESSING="proc_0")
    space = E("PrintSpace", page_el, HPOS=0, VPOS=0, WIDTH=page.width, HEIGHT=page.height)
    if not page.lines:
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    x0, y0, x1, y1 = _union(page)
    block = E("TextBlock", space, ID="block_0", HPOS=x0, VPOS=y0, WIDTH=x1 - x0, HEIGHT=y1 - y0)
    for line in page.lines:
        lx0, ly0, lx1, ly1 = _bbox(line, page)
        baseline = _points(_clamp(line.baseline, page)) if len(line.baseline) >= 2 else None
        line_el = E("TextLine", block, ID=f"line_{line.index}", HPOS=lx0, VPOS=ly0, WIDTH=lx1 - lx0,
                    HEIGHT=ly1 - ly0, BASELINE=baseline, CS="true" if line.is_ground_truth else None)
        E("Polygon", E("Shape", line_el), POINTS=_points(_outline(line, page)))
        for position, (word, confidence) in enumerate(_words(line)):
            if position:
                E("SP", line_el)
            E("String", line_el, CONTENT=word, WC=_conf(confidence))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def render(page: ExportPage, fmt: str) -> bytes:
    """The export of `page` in `fmt` (one of FORMATS) as bytes. Raises ValueError for other formats."""
    if fmt == "txt":
        return to_txt(page).encode("utf-8")
    if fmt == "json":
        return json.dumps(to_json(page), ensure_ascii=False, indent=2).encode("utf-8")
    if fmt == "page":
        return to_page_xml(page)
    if fmt == "alto":
        return to_alto(page)
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def zip_pages(pages: Iterable[ExportPage], fmt: str) -> bytes:
    """A zip of one export per page, named `page-0001.<ext>` by page number."""
    extension = FORMATS[fmt][1]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for page in pages:
            archive.writestr(f"page-{page.page_number:04d}.{extension}", render(page, fmt))
    return buffer.getvalue()
