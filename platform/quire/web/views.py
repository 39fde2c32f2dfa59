"""Views of the web page. Every query is scoped to `request.user` (`for_user`), so another user's
document, page or job is a 404, exactly as in the API. The pages are server-rendered; live job
state, uploads, corrections and exports go through the JSON API (`static/quire/web/*.js`).
"""

import hashlib

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import Count, Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from quire.api.serializers import EXPORT_FORMATS, MAX_NAME_CHARS, text_problem
from quire.api.throttling import ScopedRateThrottle, client_address
from quire.documents.models import Document, Line, Page
from quire.documents.search import SearchError, search_lines
from quire.jobs.models import JobState, TrainingJob, TranscriptionJob
from quire.registry import services
from quire.registry.models import ModelVersion

LOGIN_URL = "web:login"
JOBS_SHOWN = 100
EXPORT_LABELS = {"txt": "Text", "json": "JSON", "page": "PAGE XML", "alto": "ALTO"}
assert set(EXPORT_LABELS) == set(EXPORT_FORMATS), "a label per API export format"


LOGIN_WINDOW_S = 60
LOGIN_THROTTLED = "Too many failed sign-in attempts; wait a minute and try again."


class ThrottledLoginView(auth_views.LoginView):
    """The sign-in form, throttled: after QUIRE_LOGIN_FAILURES_PER_MIN failed attempts within a
    minute from one client address (`quire.api.throttling.client_address`: REMOTE_ADDR, or the
    X-Forwarded-For entry of the outermost of QUIRE_TRUSTED_PROXY_COUNT proxies) or for one
    username, every attempt (even with the right password) is answered 429 with a message until
    the minute is over. Counts live in the shared cache (Redis in production), so all web
    processes see the same counts."""

    def _keys(self) -> list[str]:
        username = self.request.POST.get("username", "").strip().lower()
        digest = hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()
        return [f"login-failures:addr:{client_address(self.request)}", f"login-failures:user:{digest}"]

    def post(self, request, *args, **kwargs):
        limit = settings.QUIRE_LOGIN_FAILURES_PER_MIN
        if any((cache.get(key) or 0) >= limit for key in self._keys()):
            context = self.get_context_data(form=self.get_form(), throttled=LOGIN_THROTTLED)
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        for key in self._keys():
            cache.add(key, 0, timeout=LOGIN_WINDOW_S)  # the window starts at the first failure
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=LOGIN_WINDOW_S)
        return super().form_invalid(form)


def _latest_jobs() -> Prefetch:
    """Prefetch of each page's jobs, newest first (the first one is the page's current job)."""
    return Prefetch("jobs", TranscriptionJob.objects.order_by("-created_at", "-id"), to_attr="jobs_newest")


def _with_job(pages):
    """Attach `page.job` (newest job or None) to each page of an iterable prefetched with `_latest_jobs`."""
    pages = list(pages)
    for page in pages:
        page.job = page.jobs_newest[0] if page.jobs_newest else None
    return pages


@login_required(login_url=LOGIN_URL)
@require_http_methods(["GET", "POST"])
def document_list(request):
    """The user's documents with page counts and job states; POST `name` creates a document."""
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if not name:
            messages.error(request, "A document needs a name.")
            return redirect("web:documents")
        if problem := text_problem(name, max_length=MAX_NAME_CHARS):
            messages.error(request, f"Document name: {problem}.")
            return redirect("web:documents")
        document = Document.objects.create(owner=request.user, name=name)
        return redirect("web:document", pk=document.pk)
    counts = {f"n_{state}": Count("pages__jobs", filter=Q(pages__jobs__state=state), distinct=True)
              for state in JobState.values}
    documents = (Document.objects.for_user(request.user)
                 .annotate(page_count=Count("pages", distinct=True), **counts)
                 .order_by("-created_at", "-id"))
    return render(request, "quire/web/document_list.html",
                  {"documents": documents, "nav": "documents"})


@login_required(login_url=LOGIN_URL)
def document_detail(request, pk: int):
    """One document: drop zone for uploads, its pages with live job state, document exports."""
    document = get_object_or_404(Document.objects.for_user(request.user), pk=pk)
    pages = _with_job(document.pages.annotate(line_count=Count("lines"))
                      .prefetch_related(_latest_jobs()).order_by("order", "id"))
    return render(request, "quire/web/document_detail.html",
                  {"document": document, "pages": pages, "export_labels": EXPORT_LABELS, "nav": "documents"})


class _SearchScope:
    """The throttle scope the web search shares with `GET /api/v1/search/` (rate `search`)."""

    throttle_scope = "search"


@login_required(login_url=LOGIN_URL)
def search(request):
    """Search the transcriptions of your documents (near matches too); each hit links to its page
    with the line selected."""
    q = request.GET.get("q", "").strip()
    hits, error, status = [], None, 200
    if q and not ScopedRateThrottle().allow_request(request, _SearchScope):
        error, status = "too many searches in a short time: wait a minute and search again", 429
    elif q:
        try:
            hits = search_lines(request.user, q, limit=200)
        except SearchError as exc:
            error = str(exc)
    return render(request, "quire/web/search.html", {"q": q, "hits": hits, "error": error, "nav": "search"},
                  status=status)



REVIEW_LINES = 100


@login_required(login_url=LOGIN_URL)
def review(request):
    """The least confident lines nobody has corrected yet (all documents, or one), each linking to
    its page with the line selected: what to correct first before retraining."""
    documents = Document.objects.for_user(request.user).order_by("name", "id")
    document = None
    if raw := request.GET.get("document"):
        try:
            document = get_object_or_404(documents, pk=int(raw))
        except ValueError:  # also "²": str.isdigit() but not int()
            raise Http404("no such document") from None
    lines = Line.objects.for_user(request.user).filter(is_ground_truth=False, confidence__isnull=False)
    if document is not None:
        lines = lines.filter(page__document=document)
    rows = lines.select_related("page__document").order_by("confidence", "page__document_id", "page__order",
                                                            "index")[:REVIEW_LINES]
    return render(request, "quire/web/review.html", {"rows": rows, "documents": documents, "document": document,
                                                      "limit": REVIEW_LINES, "nav": "review"})


@login_required(login_url=LOGIN_URL)
def page_detail(request, pk: int):
    """One page: image with line polygons, editable transcription, exports (lines come from the API)."""
    page = get_object_or_404(Page.objects.for_user(request.user).select_related("document")
                             .prefetch_related(_latest_jobs()), pk=pk)
    page = _with_job([page])[0]
    siblings = list(page.document.pages.order_by("order", "id").values_list("pk", flat=True))
    position = siblings.index(page.pk)
    return render(request, "quire/web/page_detail.html", {
        "page": page, "document": page.document, "export_labels": EXPORT_LABELS, "nav": "documents",
        "position": position + 1, "page_total": len(siblings),
        "previous_pk": siblings[position - 1] if position > 0 else None,
        "next_pk": siblings[position + 1] if position + 1 < len(siblings) else None,
    })


@login_required(login_url=LOGIN_URL)
def job_list(request):
    """The user's most recent transcription jobs, live (state, progress, time, error, retry/cancel)."""
    jobs = (TranscriptionJob.objects.for_user(request.user).select_related("page__document")
            .order_by("-created_at", "-id")[:JOBS_SHOWN])
    return render(request, "quire/web/job_list.html", {"jobs": jobs, "limit": JOBS_SHOWN, "nav": "jobs"})


def flatten_metrics(metrics: dict, prefix: str = "") -> dict[str, object]:
    """Nested metrics as one level: {"cer": {"dev": 0.1}, "params": 3} → {"cer · dev": 0.1, "params": 3}.

    Lists and other values are kept as they are (rendered as text).
    """
    flat: dict[str, object] = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix} · {key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, name))
        else:
            flat[name] = value
    return flat


def metrics_table(versions: list[ModelVersion]) -> list[tuple[str, list[object]]]:
    """Rows (metric name, [value per version, None where missing]) over the union of metric names."""
    flats = [flatten_metrics(v.metrics) for v in versions]
    names = sorted({name for flat in flats for name in flat})
    return [(name, [flat.get(name) for flat in flats]) for name in names]


def _figure(block: dict | None, *keys: str) -> float | None:
    """A number nested in a metrics block (`_figure(m, "dev", "sources", "x", "cer")`), or None."""
    value = block
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def candidate_comparison(candidate: ModelVersion, production: ModelVersion | None) -> dict:
    """A candidate's figures beside those of the version it was trained from, measured in the same
    run on the same lines (`metrics["baseline"]`, written by workers.training).

    Returns {"candidate", "baseline_version", "baseline_is_production", "worse" (held-out CER
    higher than the baseline's, or None when either is missing), "rows": [{"label", "candidate",
    "baseline", "delta", "verdict" ("better" | "worse" | "same" | "")}]}; rows are held-out CER and
    WER, dev CER and WER, then dev CER per source. Lower is better for every row.
    """
    metrics = candidate.metrics or {}
    baseline = metrics.get("baseline") or {}
    specs = [("Held-out CER", ("heldout", "cer")), ("Held-out WER", ("heldout", "wer")),
             ("Dev CER", ("dev", "cer")), ("Dev WER", ("dev", "wer"))]
    sources = sorted(set((metrics.get("dev") or {}).get("sources") or {})
                     | set((baseline.get("dev") or {}).get("sources") or {}))
    specs += [(f"Dev CER · {source}", ("dev", "sources", source, "cer")) for source in sources]
    rows = []
    for label, keys in specs:
        ours, theirs = _figure(metrics, *keys), _figure(baseline, *keys)
        if ours is None and theirs is None:
            continue
        delta = None if ours is None or theirs is None else round(ours - theirs, 4)
        verdict = "" if delta is None else "better" if delta < 0 else "worse" if delta > 0 else "same"
        rows.append({"label": label, "candidate": ours, "baseline": theirs, "delta": delta, "verdict": verdict})
    held = rows[0] if rows and rows[0]["label"] == "Held-out CER" else None
    return {
        "candidate": candidate,
        "baseline_version": baseline.get("version"),
        "baseline_is_production": bool(production and baseline.get("version") == production.version),
        "worse": None if held is None or held["delta"] is None else held["delta"] > 0,
        "rows": rows,
    }


#: Fields of the retraining form: (parameter of services.TRAINING_PARAMS, label, help, advanced).
TRAINING_FIELDS = [
    ("steps", "Steps", "optimiser steps (the run stops at the steps or the time budget, whichever comes first)", False),
    ("time_budget_s", "Time budget (s)", "0 = no time limit", False),
    ("mix_base", "Mix in the base training lines", "the lines the shipped model was trained on", False),
    ("base_max_lines", "Base lines at most", "", False),
    ("synthetic_ratio", "Synthetic share", "share of synthetic lines per epoch, 0 to 0.9", False),
    ("batch_size", "Batch size", "", True),
    ("lr", "Learning rate", "", True),
    ("eval_every", "Validate every (steps)", "", True),
    ("heldout_fraction", "Held-out share of ground truth", "", True),
    ("dev_max_lines", "Dev lines scored", "0 = no dev-set evaluation", True),
    ("seed", "Seed", "", True),
]


def training_form_fields() -> list[dict]:
    """The retraining form's fields with their type, default and range from TRAINING_PARAMS."""
    fields = []
    for name, label, help_text, advanced in TRAINING_FIELDS:
        kind, default, low, high = services.TRAINING_PARAMS[name]
        fields.append({"name": name, "label": label, "help": help_text, "advanced": advanced,
                       "type": {bool: "checkbox", int: "int", float: "float"}[kind], "default": default,
                       "min": low, "max": high, "step": 1 if kind is int else "any"})
    return fields


@login_required(login_url=LOGIN_URL)
def model_list(request):
    """Staff only (404 for others): model versions per kind with their metrics side by side, each
    candidate beside the version it was trained from, promote / roll back, the retraining form and
    the live progress of the latest training job (`static/quire/web/models.js` drives the API)."""
    if not request.user.is_staff:
        raise Http404("no such page")
    kinds = []
    for kind, label in ModelVersion.Kind.choices:
        versions = list(ModelVersion.objects.filter(kind=kind).select_related("parent", "created_by")
                        .order_by("-created_at", "-id"))
        production = next((v for v in versions if v.state == ModelVersion.State.PRODUCTION), None)
        comparisons = [candidate_comparison(v, production) for v in versions
                       if v.state == ModelVersion.State.CANDIDATE and (v.metrics or {}).get("baseline")]
        kinds.append({"kind": kind, "label": label, "versions": versions, "rows": metrics_table(versions),
                      "production": production, "comparisons": comparisons})
    trainings = list(TrainingJob.objects.select_related("created_by").order_by("-created_at", "-id")[:20])
    return render(request, "quire/web/model_list.html", {
        "kinds": kinds, "trainings": trainings, "latest_training": trainings[0] if trainings else None,
        "training_fields": training_form_fields(), "ground_truth_lines": services.ground_truth_lines().count(),
        "min_ground_truth_lines": services.MIN_GROUND_TRUTH_LINES, "nav": "models"})
