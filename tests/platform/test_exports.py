"""Exports: txt, JSON, PAGE XML 2019 and ALTO 4.4, valid against the official schemas, escaped."""
import io
import json
import zipfile

import pytest

from quire.documents.exports import ALTO_NS, PAGE_NS, export_page, render, to_json, to_txt, zip_pages
from tests.platform.xml_schemas import assert_valid

TRICKY = ["Fish & Chips <b>not a tag</b>", "Œuvres — “Québec” ½ ü 漢字 🙂", "a\x07b"]


def _result(texts=TRICKY):
    lines = []
    for i, text in enumerate(texts):
        y = 10 + 40 * i
        lines.append({"text": text, "confidence": 0.8, "char_confidences": [0.5 + i / 10] * len(text),
                      "polygon": [[5, y], [380, y], [380, y + 30], [5, y + 30]],
                      "baseline": [[5, y + 25], [380, y + 25]], "bbox": [5, y, 380, y + 30]})
    return {"width": 400, "height": 300, "lines": lines, "models": {"recognizer": "quire-recognizer@1"}}


@pytest.mark.parametrize("fmt,ns", [("page", PAGE_NS), ("alto", ALTO_NS)])
def test_xml_is_schema_valid_and_round_trips_text(fmt, ns):
    data = render(export_page(_result(), image_filename="brief & notes.png"), fmt)
    root = assert_valid(data, fmt)
    if fmt == "page":
        texts = [u.text for u in root.iterfind(f".//{{{ns}}}TextLine/{{{ns}}}TextEquiv/{{{ns}}}Unicode")]
    else:
        texts = [" ".join(s.get("CONTENT") for s in line.iterfind(f"{{{ns}}}String"))
                 for line in root.iterfind(f".//{{{ns}}}TextLine")]
    assert texts == [TRICKY[0], TRICKY[1], "ab"]  # the BEL control character cannot be in XML 1.0
    assert b"&amp;" in data and b"&lt;b&gt;" in data


def test_page_xml_geometry_and_confidence():
    root = assert_valid(render(export_page(_result()), "page"), "page")
    line = root.find(f".//{{{PAGE_NS}}}TextLine")
    assert line.find(f"{{{PAGE_NS}}}Coords").get("points") == "5,10 380,10 380,40 5,40"
    assert line.find(f"{{{PAGE_NS}}}Baseline").get("points") == "5,35 380,35"
    assert float(line.find(f"{{{PAGE_NS}}}TextEquiv").get("conf")) == pytest.approx(0.8)


def test_printed_lines_are_marked_in_page_xml():
    result = _result(["Bank of San Mateo County", "Dear Sir"])
    result["lines"][0]["printed"] = True
    root = assert_valid(render(export_page(result), "page"), "page")
    lines = root.findall(f".//{{{PAGE_NS}}}TextLine")
    assert [line.get("production") for line in lines] == ["printed", None]


def test_alto_word_confidence_is_mean_of_characters():
    root = assert_valid(render(export_page(_result(["ab cd"])), "alto"), "alto")
    strings = root.findall(f".//{{{ALTO_NS}}}String")
    assert [s.get("CONTENT") for s in strings] == ["ab", "cd"]
    assert [float(s.get("WC")) for s in strings] == [pytest.approx(0.5), pytest.approx(0.5)]
    assert root.find(f".//{{{ALTO_NS}}}TextLine").get("BASELINE") == "5,35 380,35"


@pytest.mark.parametrize("fmt", ["page", "alto"])
def test_degenerate_geometry_and_empty_pages_stay_valid(fmt):
    odd = {"width": 50, "height": 40, "lines": [
        {"text": "", "confidence": None, "polygon": [[3, 3]], "baseline": [], "bbox": []},
        {"text": "far out", "confidence": 1.7, "polygon": [[-5, -5], [900, 0], [900, 900]],
         "baseline": [[0, 10], [70, 10]], "bbox": [-5, -5, 900, 900]},
    ]}
    root = assert_valid(render(export_page(odd), fmt), fmt)
    coords = [c.get("points") or c.get("POINTS") for c in root.iter() if c.get("points") or c.get("POINTS")]
    for points in coords:
        for pair in points.split():
            x, y = map(int, pair.split(","))
            assert 0 <= x <= 50 and 0 <= y <= 40
    assert_valid(render(export_page({"width": 10, "height": 10, "lines": []}), fmt), fmt)


def test_txt_and_json():
    page = export_page(_result(["one", "two & three"]))
    assert to_txt(page) == "one\ntwo & three\n"
    body = json.loads(render(page, "json"))
    assert body["text"] == "one\ntwo & three\n" and body["width"] == 400
    assert [line["text"] for line in body["lines"]] == ["one", "two & three"]
    assert to_json(page)["models"] == {"recognizer": "quire-recognizer@1"}


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown export format"):
        render(export_page(_result()), "docx")


def test_zip_names_pages_by_number():
    pages = [export_page(_result(["p1"]), page_number=1), export_page(_result(["p2"]), page_number=2)]
    with zipfile.ZipFile(io.BytesIO(zip_pages(pages, "alto"))) as archive:
        assert archive.namelist() == ["page-0001.alto.xml", "page-0002.alto.xml"]
        for name in archive.namelist():
            assert_valid(archive.read(name), "alto")
