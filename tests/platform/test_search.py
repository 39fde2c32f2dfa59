"""Searching the transcriptions (quire.documents.search, GET /api/v1/search/, the web search page)."""
import pytest
from django.test import Client

from quire.documents.models import Document
from quire.documents.search import SearchError, normalize, search_lines
from tests.platform.factories import add_lines, client_for, make_page

URL = "/api/v1/search/"


@pytest.fixture
def letters(alice, bob):
    """Two documents of alice and one of bob, with lines as the recognizer might have read them."""
    kew = Document.objects.create(owner=alice, name="Kew letters")
    page1, _ = make_page(alice, kew)
    page2, _ = make_page(alice, kew)
    l1 = add_lines(page1, ["Postville est situé à l'est du Labrador,", "dans la partie continentale"])
    l2 = add_lines(page2, ["I return proof of Bot. Mag. to Kew", "the Labradar coast is cold"])  # misread
    other = Document.objects.create(owner=alice, name="Diary")
    page3, _ = make_page(alice, other)
    l3 = add_lines(page3, ["nothing about that place"])
    page4, _ = make_page(bob, Document.objects.create(owner=bob, name="Bob's"))
    add_lines(page4, ["Labrador is Bob's"])
    return {"kew": kew, "diary": other, "lines": l1 + l2 + l3}


def test_normalize_folds_case_accents_composition_and_spaces():
    assert normalize("  E\u0301TE\u0301   à  Kew ") == "été à kew"


def test_exact_and_near_matches_are_found_best_first(alice, letters):
    hits = search_lines(alice, "LABRADOR")
    texts = [(h.text, h.score) for h in hits]
    assert texts[0] == ("Postville est situé à l'est du Labrador,", 100.0)
    assert texts[1][0] == "the Labradar coast is cold" and 80 <= texts[1][1] < 100
    assert all("Bob" not in h.text for h in hits)  # other users' lines are never searched
    assert [h.text for h in search_lines(alice, "labrador", fuzzy=False)] == [texts[0][0]]


def test_decomposed_accents_and_short_queries(alice, letters):
    assert [h.text for h in search_lines(alice, "situe\u0301")] == ["Postville est situé à l'est du Labrador,"]
    assert [h.text for h in search_lines(alice, "Kev")] == []  # under 5 letters: exact only
    assert [h.text for h in search_lines(alice, "Kew")] == ["I return proof of Bot. Mag. to Kew"]


def test_short_lines_are_not_perfect_matches_of_a_longer_query(alice, letters):
    page, _ = make_page(alice, letters["diary"])
    add_lines(page, ["a", "La", "dor", "Labrado"])  # noise detections, a cut-off word
    hits = {h.text: h.score for h in search_lines(alice, "Labrador")}
    assert "a" not in hits and "La" not in hits and "dor" not in hits
    assert 80 <= hits["Labrado"] < 100  # one letter missing: a near match, not a perfect one


def test_a_document_narrows_the_search(alice, letters):
    assert search_lines(alice, "Labrador", document_id=letters["diary"].pk) == []
    assert len(search_lines(alice, "Labrador", document_id=letters["kew"].pk)) == 2


@pytest.mark.parametrize("kwargs,words", [({"query": ""}, "q: give"), ({"query": "x" * 201}, "at most 200"),
                                          ({"query": "kew", "min_score": 10}, "min_score"),
                                          ({"query": "kew", "limit": 0}, "limit")])
def test_bad_searches_are_refused(alice, kwargs, words):
    with pytest.raises(SearchError, match=words):
        search_lines(alice, **kwargs)


def test_api_answers_hits_with_their_place_and_links(alice, letters):
    body = client_for(alice).get(URL, {"q": "labrador"}).json()
    assert body["count"] == 2 and body["fuzzy"] is True
    top = body["results"][0]
    first_line = letters["lines"][0]
    assert (top["line"], top["score"], top["document_name"], top["page_number"], top["line_index"]) == \
        (first_line.pk, 100.0, "Kew letters", 1, 0)
    assert top["web_url"].endswith(f"/pages/{first_line.page_id}/#line-{first_line.pk}")
    assert top["page_url"].endswith(f"/api/v1/pages/{first_line.page_id}/")
    assert client_for(alice).get(URL, {"q": "labrador", "fuzzy": "0"}).json()["count"] == 1


@pytest.mark.parametrize("params,status,words", [
    ({}, 400, "q: give"), ({"q": "kew", "limit": "lots"}, 400, "integer"), ({"q": "kew", "min_score": "7"}, 400, "min_score"),
    ({"q": "kew", "fuzzy": "maybe"}, 400, "fuzzy must be"), ({"q": "kew", "document": "999999"}, 404, "no document"),
])
def test_api_bad_parameters(alice, letters, params, status, words):
    response = client_for(alice).get(URL, params)
    assert response.status_code == status and words in response.json()["detail"], response.json()


def test_api_does_not_search_someone_elses_document(bob, letters):
    response = client_for(bob).get(URL, {"q": "labrador", "document": letters["kew"].pk})
    assert response.status_code == 404


def test_web_search_page_links_to_the_line(alice, letters):
    web = Client()
    web.force_login(alice)
    html = web.get("/search/", {"q": "labrador"}).content.decode()
    line = letters["lines"][0]
    assert f'href="/pages/{line.page_id}/#line-{line.pk}"' in html and "2 lines found" in html
    assert "No line matches" in web.get("/search/", {"q": "zanzibar"}).content.decode()
    assert "at most 200" in web.get("/search/", {"q": "y" * 300}).content.decode()


def test_web_and_api_searches_share_one_throttle(alice, letters, monkeypatch):
    from django.core.cache import cache

    from quire.api.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "search": "2/min"})
    cache.clear()
    web = Client()
    web.force_login(alice)
    assert web.get("/search/", {"q": "kew"}).status_code == 200
    assert client_for(alice).get(URL, {"q": "kew"}).status_code == 200
    throttled = web.get("/search/", {"q": "kew"})
    assert throttled.status_code == 429 and "too many searches" in throttled.content.decode()
    assert client_for(alice).get(URL, {"q": "kew"}).status_code == 429
    assert web.get("/search/").status_code == 200  # the empty form is not a search
