"""Reading line geometry of full pages: PAGE-2013/2019 XML, ALTO-4 XML and the train `pages.jsonl`.

Every reader returns plain dicts ``{"id", "polygon", "baseline", "handwritten"}`` with coordinates as
lists of ``[x, y]`` floats in the pixels of the page image the file describes.
"""
from __future__ import annotations

import json
from pathlib import Path

from lxml import etree


def _points_page(s: str) -> list[list[float]]:
    """PAGE ``points="x,y x,y ..."`` → [[x, y], ...]."""
    out = []
    for tok in s.split():
        x, y = tok.split(",")
        out.append([float(x), float(y)])
    return out


def _points_alto(s: str) -> list[list[float]]:
    """ALTO ``POINTS="x y x y ..."`` (or ``x,y x,y``) → [[x, y], ...]."""
    vals = [float(v) for v in s.replace(",", " ").split()]
    return [[vals[i], vals[i + 1]] for i in range(0, len(vals) - 1, 2)]


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def read_page_xml(path: str | Path) -> list[dict]:
    """Lines of a PAGE XML file (any schema version), in document order.

    Lines without a polygon or baseline get the missing one derived from the other
    (baseline = lower edge of the bounding box). Raises ``ValueError`` if the file is neither
    PAGE nor ALTO.
    """
    tree = etree.parse(str(path))
    root = tree.getroot()
    name = _local(root.tag)
    if name == "PcGts":
        return _read_page(root)
    if name == "alto":
        return _read_alto(root)
    raise ValueError(f"{path}: root element {name!r} is neither PcGts (PAGE) nor alto (ALTO)")


def _read_page(root) -> list[dict]:
    lines = []
    for el in root.iter():
        if _local(el.tag) != "TextLine":
            continue
        poly, base, text = None, None, ""
        for ch in el:
            n = _local(ch.tag)
            if n == "Coords" and ch.get("points"):
                poly = _points_page(ch.get("points"))
            elif n == "Baseline" and ch.get("points"):
                base = _points_page(ch.get("points"))
            elif n == "TextEquiv":
                for u in ch:
                    if _local(u.tag) == "Unicode" and u.text:
                        text = u.text
        lines.append(_finish(el.get("id"), poly, base, text, True))
    return [ln for ln in lines if ln is not None]


def _read_alto(root) -> list[dict]:
    # TAGREFS label lines as Print / Typewritten / Handwritten (Stanford, eScriptorium exports).
    tags = {}
    for el in root.iter():
        if _local(el.tag) == "OtherTag":
            tags[el.get("ID")] = el.get("LABEL", "")
    lines = []
    for el in root.iter():
        if _local(el.tag) != "TextLine":
            continue
        poly = None
        for sh in el:
            if _local(sh.tag) == "Shape":
                for p in sh:
                    if _local(p.tag) == "Polygon" and p.get("POINTS"):
                        poly = _points_alto(p.get("POINTS"))
        if poly is None and el.get("HPOS") is not None:
            x, y = float(el.get("HPOS")), float(el.get("VPOS"))
            w, h = float(el.get("WIDTH")), float(el.get("HEIGHT"))
            poly = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
        base = _points_alto(el.get("BASELINE")) if el.get("BASELINE") else None
        text = " ".join(s.get("CONTENT", "") for s in el if _local(s.tag) == "String")
        labels = " ".join(tags.get(t, "") for t in (el.get("TAGREFS") or "").split())
        handwritten = not any(k in labels for k in ("Typewritten", "Print"))
        lines.append(_finish(el.get("ID"), poly, base, text, handwritten))
    return [ln for ln in lines if ln is not None]


def _finish(lid, poly, base, text, handwritten):
    if poly is None and base is None:
        return None
    if poly is None:
        xs = [p[0] for p in base]
        ys = [p[1] for p in base]
        poly = [[min(xs), min(ys) - 20], [max(xs), min(ys) - 20], [max(xs), max(ys) + 5], [min(xs), max(ys) + 5]]
    if base is None or len(base) < 2:
        xs = [p[0] for p in poly]
        ys = [p[1] for p in poly]
        y = min(ys) + 0.75 * (max(ys) - min(ys))
        base = [[min(xs), y], [max(xs), y]]
    return {"id": lid, "polygon": poly, "baseline": base, "text": text, "handwritten": handwritten}


def read_pages_index(path: str | Path) -> list[dict]:
    """Pages of a ``pages.json`` index (format of ``../shared/data/dev/pages/pages.json``).

    Returns dicts ``{"image": absolute path, "source", "lines": [...]}``. The ``handwritten`` flag
    comes from the XML line type where present, else from a ``lines.jsonl`` beside the index's
    split folder (matched by page file and XML line id).
    """
    path = Path(path)
    # paths in the index are relative to the split folder (the index's parent's parent) when they
    # start with "pages/", else relative to the index's folder
    index = json.loads(path.read_text())
    base = path.parent.parent if index and str(index[0]["image"]).startswith("pages/") else path.parent
    hw = {}
    lines_jsonl = base / "lines.jsonl"
    if lines_jsonl.exists():
        for raw in lines_jsonl.read_text().splitlines():
            r = json.loads(raw)
            hw[(r.get("page"), r.get("xml_line_id"))] = bool(r.get("handwritten", True))
    pages = []
    for p in index:
        xml = base / p["xml"]
        lines = read_page_xml(xml)
        for ln in lines:
            key = (xml.name, ln["id"])
            if key in hw:
                ln["handwritten"] = hw[key]
        pages.append({"image": str(base / p["image"]), "source": p.get("source", ""), "lines": lines})
    return pages


def read_pages_jsonl(path: str | Path) -> list[dict]:
    """Pages of a ``pages.jsonl`` file (format of ``../shared/data/train/pages/pages.jsonl``: one page
    per row with its lines' ``id, text, handwritten, polygon, baseline`` inline; image paths relative
    to the split folder, the file's parent's parent). Returns dicts like :func:`read_pages_index`."""
    path = Path(path)
    base = path.parent.parent
    pages = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            p = json.loads(raw)
            lines = [_finish(ln["id"], ln.get("polygon"), ln.get("baseline"), ln.get("text", ""),
                             bool(ln.get("handwritten", True))) for ln in p["lines"]]
            pages.append({"image": str(base / p["image"]), "source": p.get("source", ""),
                          "lines": [ln for ln in lines if ln is not None]})
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}:{n}: malformed page record ({exc})") from exc
    return pages


def read_pages(path: str | Path) -> list[dict]:
    """Pages of a ``pages.json`` index or a ``pages.jsonl`` file (chosen by the suffix)."""
    return read_pages_jsonl(path) if str(path).endswith(".jsonl") else read_pages_index(path)
