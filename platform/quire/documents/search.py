"""Search the transcriptions of a user's documents, tolerant to recognition errors.

Handwriting recognition gets letters wrong, so an exact search misses lines an archivist is
looking for. Each line's text and the query are compared after Unicode NFC, case folding and
whitespace collapsing: a line containing the query scores 100; otherwise, with ``fuzzy``, a line
at least as long as the query scores rapidfuzz's ``partial_ratio`` (the best similarity, 0–100,
of the query with any stretch of the line of the query's length, from the normalised Levenshtein
distance) and a shorter line its plain ``ratio`` with the query (``partial_ratio`` would slide
the line along the query and give "a" 100 for any query holding an "a"); lines scoring at least
``min_score`` are kept. Queries shorter than ``FUZZY_MIN_CHARS`` characters are matched exactly
only: one wrong letter in three is not a near miss. Lines are read from the database in chunks,
so memory stays bounded by the chunk and the matches.

Lines corrected by a person (ground truth) are searched like the others; the hit says which.
"""
from __future__ import annotations

import unicodedata
from rapidfuzz import fuzz, process

from .models import Line

MAX_QUERY_CHARS = 200
FUZZY_MIN_CHARS = 5
#: Lines read per search at most (a user with more narrows the search to a document).
MAX_LINES_SCANNED = 200_000
CHUNK = 5_000


class SearchError(ValueError):
    """The query or its options are not usable; the message names the problem."""


def normalize(text: str) -> str:
    """NFC, case-folded, whitespace runs collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _score(q: str, texts: dict[int, str], fuzzy: bool, min_score: float) -> dict[int, float]:
    """{line id: score} of the normalised ``texts`` that match the normalised query ``q``."""
    found = {pk: 100.0 for pk, text in texts.items() if q in text}
    if not fuzzy:
        return found
    long = {pk: t for pk, t in texts.items() if pk not in found and len(t) >= len(q)}
    short = {pk: t for pk, t in texts.items() if pk not in found and len(t) < len(q)}
    for scorer, choices in ((fuzz.partial_ratio, long), (fuzz.ratio, short)):
        for _text, score, pk in process.extract(q, choices, scorer=scorer, score_cutoff=min_score, limit=None):
            found[pk] = round(float(score), 1)
    return found


def search_lines(user, query: str, *, fuzzy: bool = True, document_id: int | None = None,
                 min_score: float = 80.0, limit: int = 50) -> list[Line]:
    """Lines of ``user``'s documents (or of one of them) matching ``query``, best first (then by
    document, page and reading order), each with a ``score`` attribute (0–100; 100 = contains the
    query) and its page and document loaded. Raises SearchError for an empty or too long query, a
    ``min_score`` outside 50–100 or a ``limit`` outside 1–500."""
    q = normalize(query or "")
    if not q:
        raise SearchError("q: give the text to search for")
    if len(q) > MAX_QUERY_CHARS:
        raise SearchError(f"q: at most {MAX_QUERY_CHARS} characters, got {len(q)}")
    if not 50 <= min_score <= 100:
        raise SearchError(f"min_score must be between 50 and 100, got {min_score}")
    if not 1 <= limit <= 500:
        raise SearchError(f"limit must be between 1 and 500, got {limit}")
    lines = Line.objects.for_user(user)
    if document_id is not None:
        lines = lines.filter(page__document_id=document_id)
    if lines.count() > MAX_LINES_SCANNED:
        raise SearchError(f"more than {MAX_LINES_SCANNED} lines to search: narrow it to a document")
    fuzzy = fuzzy and len(q) >= FUZZY_MIN_CHARS
    scores: dict[int, float] = {}
    chunk: dict[int, str] = {}
    for pk, text in lines.values_list("id", "text").iterator(chunk_size=CHUNK):
        chunk[pk] = normalize(text)
        if len(chunk) >= CHUNK:
            scores.update(_score(q, chunk, fuzzy, min_score))
            chunk = {}
    scores.update(_score(q, chunk, fuzzy, min_score))
    if not scores:
        return []
    # the best few (ties at the cut kept by id order), fetched in one query
    best = sorted(scores, key=lambda pk: (-scores[pk], pk))[:min(2000, 4 * limit)]
    found = {line.pk: line for line in Line.objects.filter(pk__in=best).select_related("page__document")}
    ranked = sorted(found.values(), key=lambda ln: (-scores[ln.pk], ln.page.document_id, ln.page.order, ln.index))
    for line in ranked:
        line.score = scores[line.pk]
    return ranked[:limit]
