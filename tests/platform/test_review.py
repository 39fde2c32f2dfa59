"""The review queue: lines least confident first (GET /api/v1/lines/, the web Review page)."""
import pytest
from django.test import Client

from quire.documents.models import Document, Line
from tests.platform.factories import add_lines, client_for, make_page

URL = "/api/v1/lines/"


@pytest.fixture
def lines(alice, bob):
    kew = Document.objects.create(owner=alice, name="Kew letters")
    diary = Document.objects.create(owner=alice, name="Diary")
    a = add_lines(make_page(alice, kew)[0], ["sure", "unsure", "corrected"])
    b = add_lines(make_page(alice, diary)[0], ["shaky", "no confidence"])
    add_lines(make_page(bob, Document.objects.create(owner=bob, name="Bob's"))[0], ["bob's worst"])
    for line, conf in zip(a + b, [0.95, 0.40, 0.10, 0.55, None]):
        line.confidence = conf
        line.save(update_fields=["confidence"])
    Line.objects.filter(pk=a[2].pk).update(is_ground_truth=True)
    Line.objects.filter(text="bob's worst").update(confidence=0.01)
    return {"kew": kew, "diary": diary}


def test_least_confident_first_with_filters(alice, lines):
    client = client_for(alice)
    texts = lambda **p: [r["text"] for r in client.get(URL, p).json()["results"]]  # noqa: E731
    assert texts() == ["corrected", "unsure", "shaky", "sure", "no confidence"]  # no confidence: last
    assert texts(corrected="0") == ["unsure", "shaky", "sure", "no confidence"]
    assert texts(corrected="1") == ["corrected"]
    assert texts(corrected="") == texts()  # blank: corrected or not
    assert texts(max_confidence="0.5", corrected="0") == ["unsure"]
    assert texts(document=lines["diary"].pk) == ["shaky", "no confidence"]
    row = client.get(URL, {"document": lines["kew"].pk}).json()["results"][1]
    assert (row["text"], row["document_name"], row["page_number"], row["line_index"]) == ("unsure", "Kew letters", 1, 1)
    assert row["web_url"].endswith(f"#line-{row['line']}")


@pytest.mark.parametrize("params,status,words", [
    ({"document": "x"}, 400, "integer"), ({"max_confidence": "2"}, 400, "between 0 and 1"),
    ({"max_confidence": "high"}, 400, "must be a number"), ({"corrected": "perhaps"}, 400, "corrected must be"),
])
def test_bad_review_parameters(alice, lines, params, status, words):
    response = client_for(alice).get(URL, params)
    assert response.status_code == status and words in response.json()["detail"], response.json()


def test_someone_elses_document_is_not_listed(bob, lines):
    assert client_for(bob).get(URL, {"document": lines["kew"].pk}).status_code == 404
    assert [r["text"] for r in client_for(bob).get(URL).json()["results"]] == ["bob's worst"]


def test_web_review_page_lists_uncorrected_lines_least_confident_first(alice, lines):
    web = Client()
    web.force_login(alice)
    html = web.get("/review/").content.decode()
    table = html[html.index('id="review-lines"'):]
    assert table.index("unsure") < table.index("shaky") < table.index(">sure</a>")
    assert "corrected</a>" not in html and "no confidence" not in html and "bob" not in html
    diary = web.get("/review/", {"document": lines["diary"].pk}).content.decode()
    assert "shaky" in diary and "unsure" not in diary
    assert web.get("/review/", {"document": "abc"}).status_code == 404
    assert web.get("/review/", {"document": "²"}).status_code == 404  # isdigit() but not int()
