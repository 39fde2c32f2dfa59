"""API views. Every queryset is scoped to the requesting user in `get_queryset()`, so another
user's object is a 404 (its id does not leak), whatever the action.

The upload flow starts here: `PageViewSet.create` (and `TranscribeView`) → `documents.uploads`
(ingest, storage, one job per page) → the job is queued for `workers.tasks.transcribe_page`.
"""

import base64
import binascii
import time
from pathlib import PurePosixPath

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, OuterRef, Prefetch, Subquery
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from quire.documents import exports
from quire.documents.ingest import safe_display_name
from quire.documents.models import Document, Line, LineVersion, Page
from quire.documents.search import SearchError, search_lines
from quire.documents.storage import StorageUnavailable, get_bytes
from quire.documents.uploads import (
    UploadOutcome,
    UploadRejected,
    existing_upload,
    lock_uploads_of,
    prepare_upload,
    store_upload,
)
from quire.jobs.dispatch import enqueue_transcription
from quire.jobs.models import InvalidTransition, JobState, TranscriptionJob

from .errors import ApiError
from .parsers import ObjectJSONParser
from .serializers import (
    EXPORT_FORMATS,
    DocumentSerializer,
    JobSerializer,
    LineSerializer,
    LineUpdateSerializer,
    LineVersionSerializer,
    PageDetailSerializer,
    PageSerializer,
    PlacedLineSerializer,
    SearchResultSerializer,
    UploadedJobSerializer,
    plain_text,
)
from .throttling import ScopedRateThrottle

MAX_FILES_PER_REQUEST = 50
FORMAT_PARAM = OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), description="Export format.")


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def _flag(request, name: str) -> bool:
    """A yes/no request body field (`1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`, a JSON
    boolean; absent = no). Anything else is a 400 naming the field."""
    return _yes_no(request.data.get(name, ""), name)


def _query_flag(params, name: str, default: str = "") -> bool:
    """As :func:`_flag`, for a query parameter."""
    return _yes_no(params.get(name, default), name)


def _own_document_param(request) -> int | None:
    """The `document` query parameter: None when absent; 400 when not an integer; 404 when it
    is not one of the user's documents."""
    raw = request.query_params.get("document", "")
    if raw == "":
        return None
    try:
        document = int(raw)
    except ValueError:
        raise ApiError(400, f"document must be an integer (a document id), got {raw[:40]!r}") from None
    if not Document.objects.for_user(request.user).filter(pk=document).exists():
        raise ApiError(404, f"no document {document} of yours")
    return document


def _yes_no(raw, name: str) -> bool:
    value = str(raw).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(400, f"{name} must be 1 or 0 (true/false), got {str(raw)[:40]!r}")


def _export_format(request) -> str:
    fmt = request.query_params.get("format", "txt")
    if fmt not in EXPORT_FORMATS:
        raise ApiError(400, f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def _attachment(data: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class IgnoreAccept(BaseContentNegotiation):
    """Content negotiation for views that answer files (exports, page images): the `Accept`
    header is not consulted, so `Accept: application/xml` on a PAGE export or `image/png` on an
    image is not a 406; the first renderer (JSON) renders error answers."""

    def select_parser(self, request, parsers):
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


FILE_ACTION = {"content_negotiation_class": IgnoreAccept, "renderer_classes": [JSONRenderer]}


def _with_models_used(pages):
    """Annotate each page with `models_used` of its latest succeeded job (what the exports name)."""
    succeeded = (TranscriptionJob.objects.filter(page=OuterRef("pk"), state=JobState.SUCCEEDED)
                 .order_by("-finished_at", "-id"))
    return pages.annotate(models_used=Subquery(succeeded.values("models_used")[:1]))


def _over_limit(upload) -> str | None:
    """The 413 message for an uploaded file over QUIRE_MAX_UPLOAD_BYTES (checked before reading it)."""
    limit = settings.QUIRE_MAX_UPLOAD_BYTES
    if upload.size <= limit:
        return None
    return f"{safe_display_name(upload.name)}: file of {upload.size} bytes exceeds the limit of {limit} bytes"


def _state_filter(queryset, request):
    state = request.query_params.get("state")
    if state is None:
        return queryset
    if state not in JobState.values:
        raise ApiError(400, f"unknown state {state!r}; choose one of {', '.join(JobState.values)}")
    return queryset.filter(state=state)


def _int_param(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer id, got {value!r}") from None


def _document_name(request) -> str | None:
    """The optional `document_name` field, checked like POST /documents/ (400 naming the field)."""
    name = request.data.get("document_name")
    return plain_text(name, "document_name") if name else None


def _accept(request, files: list[tuple[bytes, str]], document: Document | None,
            document_name: str | None, force: bool) -> tuple[list[UploadOutcome], list[dict]]:
    """Run each (bytes, filename) through the upload service; returns outcomes and per-file errors.

    The document is created only once a file has decoded. Unless `force`, an identical earlier
    upload is answered with its pages (flagged `duplicate`, and `other_document` when they are not
    in `document`); the check is repeated under `lock_uploads_of` in the transaction that stores
    the file, so parallel uploads of one new file make one set of pages. A storage failure stops the request (503): nothing of
    the failing file is kept.
    """
    outcomes, errors = [], []
    for data, filename in files:
        try:
            target = document.pk if document is not None else None
            prepared = prepare_upload(request.user, data, filename, force=force, document_id=target)
            if isinstance(prepared, UploadOutcome):  # identical earlier upload
                outcomes.append(prepared)
                continue
            with transaction.atomic():  # no empty document is left when storing fails
                if not force:  # check again under the lock: parallel uploads of one file make one page
                    lock_uploads_of(request.user)
                    if (existing := existing_upload(request.user, prepared.sha256, target)) is not None:
                        outcomes.append(existing)
                        continue
                if document is None:
                    name = document_name or PurePosixPath(prepared.filename).stem or prepared.filename
                    document = Document.objects.create(owner=request.user, name=name[:255])
                outcomes.append(store_upload(request.user, prepared, document))
        except UploadRejected as exc:
            errors.append({"filename": safe_display_name(filename), "status": exc.status_code,
                           "detail": exc.message})
        except StorageUnavailable as exc:
            raise ApiError(503, f"storage unavailable, try again later ({exc})", "storage_unavailable") from exc
    return outcomes, errors


def _accepted_response(request, outcomes: list[UploadOutcome], errors: list[dict]) -> Response:
    """202 with one entry per accepted page and a Location for the first job; 4xx when none was."""
    accepted = [page for outcome in outcomes for page in outcome.pages]
    if not accepted:
        first = errors[0]
        raise ApiError(first["status"], "; ".join(e["detail"] for e in errors), "upload_rejected")
    jobs = UploadedJobSerializer(accepted, many=True, context={"request": request}).data
    frame_errors = [dict(e, filename=o.filename) for o in outcomes for e in o.frame_errors]
    body = {"jobs": jobs, "errors": errors + frame_errors}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": jobs[0]["url"]})


class DocumentViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Documents of the requesting user; `export/` zips every page in one format."""

    lookup_value_converter = "int"

    serializer_class = DocumentSerializer

    def get_queryset(self):
        return (Document.objects.for_user(self.request.user).annotate(page_count=Count("pages"))
                .order_by("-created_at", "-id"))

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)

    @extend_schema(parameters=[FORMAT_PARAM], responses={(200, "application/zip"): bytes})
    @action(detail=True, methods=["get"], **FILE_ACTION)
    def export(self, request, pk=None):
        document = self.get_object()
        fmt = _export_format(request)
        pages = _with_models_used(document.pages.prefetch_related("lines")).order_by("order", "id")
        data = exports.zip_pages((exports.export_page(page) for page in pages), fmt)
        return _attachment(data, "application/zip", f"document-{document.pk}-{fmt}.zip")


class PageViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Pages: upload (`POST`, multipart `files`), list (`?state=` of the latest job, `?document=`),
    detail with lines, image and exports."""

    lookup_value_converter = "int"

    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        latest_job = TranscriptionJob.objects.filter(page=OuterRef("pk")).order_by("-created_at", "-id")
        queryset = Page.objects.for_user(self.request.user).annotate(state=Subquery(latest_job.values("state")[:1]))
        if self.action == "list":
            queryset = _state_filter(queryset, self.request)
            if (document := _int_param(self.request, "document")) is not None:
                queryset = queryset.filter(document_id=document)
        if self.action in ("retrieve", "export"):
            queryset = queryset.prefetch_related(Prefetch("lines", Line.objects.order_by("index")))
        if self.action == "export":
            queryset = _with_models_used(queryset)
        return queryset

    def get_serializer_class(self):
        return PageDetailSerializer if self.action == "retrieve" else PageSerializer

    def get_throttles(self):
        self.throttle_scope = "uploads" if self.action == "create" else None
        return super().get_throttles()

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "document": {"type": "integer"}, "document_name": {"type": "string"},
            "force": {"type": "boolean"}}}},
        responses={202: UploadedJobSerializer(many=True)},
    )
    def create(self, request, *args, **kwargs):
        uploads = request.FILES.getlist("files") or request.FILES.getlist("file")
        if not uploads:
            raise ApiError(400, "no file: send one or more files in the multipart field 'files'")
        if len(uploads) > MAX_FILES_PER_REQUEST:
            raise ApiError(413, f"too many files: at most {MAX_FILES_PER_REQUEST} per request")
        document = None
        if (document_id := request.data.get("document")) not in (None, ""):
            try:
                document = Document.objects.for_user(request.user).get(pk=int(document_id))
            except (ValueError, Document.DoesNotExist):
                raise ApiError(400, f"no document with id {document_id!r}") from None
        files, too_big = [], []
        for upload in uploads:
            if message := _over_limit(upload):
                too_big.append({"filename": safe_display_name(upload.name), "status": 413, "detail": message})
            else:
                files.append((upload.read(), upload.name))
        outcomes, errors = _accept(request, files, document, _document_name(request),
                                   _flag(request, "force"))
        return _accepted_response(request, outcomes, too_big + errors)

    @extend_schema(responses={(200, "image/png"): bytes})
    @action(detail=True, methods=["get"], **FILE_ACTION)
    def image(self, request, pk=None):
        """The normalised 8-bit grayscale page image (PNG) the pipeline reads."""
        page = self.get_object()
        try:
            data = get_bytes(page.image.name)
        except StorageUnavailable as exc:
            raise ApiError(503, f"storage unavailable, try again later ({exc})") from exc
        return HttpResponse(data, content_type="image/png")

    @extend_schema(parameters=[FORMAT_PARAM], responses={(200, "application/xml"): bytes})
    @action(detail=True, methods=["get"], **FILE_ACTION)
    def export(self, request, pk=None):
        """The page's transcription as txt, json, PAGE XML 2019 or ALTO 4."""
        page = self.get_object()
        fmt = _export_format(request)
        content_type, extension = exports.FORMATS[fmt]
        data = exports.render(exports.export_page(page), fmt)
        return _attachment(data, content_type, f"page-{page.pk}.{extension}")


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Transcription jobs, filterable by `state` and `page`; cancel and retry."""

    lookup_value_converter = "int"

    serializer_class = JobSerializer

    def get_queryset(self):
        queryset = TranscriptionJob.objects.for_user(self.request.user)
        if self.action == "list":
            queryset = _state_filter(queryset, self.request)
            if (page := _int_param(self.request, "page_id")) is not None:
                queryset = queryset.filter(page_id=page)
        return queryset

    def _move(self, target: str, verb: str) -> TranscriptionJob:
        job = self.get_object()
        try:
            job.transition(target)
        except InvalidTransition as exc:
            raise ApiError(409, f"cannot {verb} a {exc.current} job", "invalid_transition") from None
        return job

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued or running job (a running one stops at its next batch of lines)."""
        job = self._move(JobState.CANCELED, "cancel")
        return Response(self.get_serializer(job).data)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed or canceled job again."""
        if self.get_object().state not in (JobState.FAILED, JobState.CANCELED):
            raise ApiError(409, "only failed or canceled jobs can be retried", "invalid_transition")
        with transaction.atomic():
            job = self._move(JobState.QUEUED, "retry")
            transaction.on_commit(lambda: enqueue_transcription(job.pk))
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": str(self.get_serializer(job).data["url"])})


class LineViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                  viewsets.GenericViewSet):
    """Lines of your documents. The list is a review queue: least confident first (lines without a
    confidence last), filtered by `document`, `max_confidence` (0–1) and `corrected` (1/0); one
    line: `PATCH` corrects text (and optionally polygon/baseline), keeping every version."""

    lookup_value_converter = "int"

    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        lines = Line.objects.for_user(self.request.user).select_related("page")
        if self.action != "list":
            return lines
        params = self.request.query_params
        document = _own_document_param(self.request)
        try:
            max_confidence = float(params["max_confidence"]) if params.get("max_confidence") else None
        except ValueError:
            raise ApiError(400, "max_confidence must be a number") from None
        if document is not None:
            lines = lines.filter(page__document_id=document)
        if max_confidence is not None:
            if not 0 <= max_confidence <= 1:
                raise ApiError(400, f"max_confidence must be between 0 and 1, got {max_confidence}")
            lines = lines.filter(confidence__lte=max_confidence)
        if params.get("corrected", "") != "":  # absent or blank: corrected or not
            lines = lines.filter(is_ground_truth=_query_flag(params, "corrected"))
        return (lines.select_related("page__document")
                .order_by(F("confidence").asc(nulls_last=True), "page__document_id", "page__order", "index", "id"))

    def get_serializer_class(self):
        if self.request.method == "PATCH":
            return LineUpdateSerializer
        return PlacedLineSerializer if self.action == "list" else LineSerializer

    @extend_schema(parameters=[
        OpenApiParameter("document", int, description="only this document"),
        OpenApiParameter("max_confidence", float, description="only lines at most this confident (0–1)"),
        OpenApiParameter("corrected", bool, description="1: only corrected lines (ground truth); 0: only the model's"),
    ])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=LineUpdateSerializer, responses=LineSerializer)
    def partial_update(self, request, *args, **kwargs):
        line = self.get_object()
        serializer = LineUpdateSerializer(line, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            if not line.versions.exists():  # keep what the model said before the first correction
                LineVersion.snapshot(line, LineVersion.Source.MODEL)
            line = serializer.save(is_ground_truth=True)
            LineVersion.snapshot(line, LineVersion.Source.USER, user=request.user)
        return Response(LineSerializer(line, context={"request": request}).data)

    @extend_schema(request=None, responses=LineVersionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def versions(self, request, pk=None):
        """Every kept version of the line, oldest first (who, when, text, geometry): the model's
        output before the first correction, then each correction. Empty for an uncorrected line."""
        line = self.get_object()
        versions = line.versions.select_related("user").order_by("created_at", "id")
        return Response(LineVersionSerializer(versions, many=True).data)


class SearchView(APIView):
    """`GET /api/v1/search/?q=...`: lines of your documents matching the text, tolerant to
    recognition errors (`quire.documents.search`); throttled at the `search` rate."""

    throttle_scope = "search"

    @extend_schema(parameters=[
        OpenApiParameter("q", str, required=True, description="text to find (at most 200 characters)"),
        OpenApiParameter("fuzzy", bool, description="also near matches (default 1); queries under 5 characters match exactly"),
        OpenApiParameter("document", int, description="only this document"),
        OpenApiParameter("min_score", float, description="near-match threshold, 50–100 (default 80)"),
        OpenApiParameter("limit", int, description="at most this many lines, 1–500 (default 50)"),
    ], responses={200: SearchResultSerializer})
    def get(self, request):
        params = request.query_params
        document_id = _own_document_param(request)
        try:
            min_score = float(params.get("min_score", 80))
            limit = int(params.get("limit", 50))
        except ValueError:
            raise ApiError(400, "limit must be an integer and min_score a number") from None
        fuzzy = _query_flag(params, "fuzzy", "1")
        try:
            hits = search_lines(request.user, params.get("q", ""), fuzzy=fuzzy, document_id=document_id,
                                min_score=min_score, limit=limit)
        except SearchError as exc:
            raise ApiError(400, str(exc)) from None
        data = {"query": params.get("q", ""), "fuzzy": fuzzy, "count": len(hits), "results": hits}
        return Response(SearchResultSerializer(data, context={"request": request}).data)


class TranscribeView(APIView):
    """One image in, text out: queue the same job as an upload and wait up to `wait` seconds.

    Multipart (`file`, optional `wait`, `force`) or JSON `{"image": <base64>, "filename": ..., "wait": ...,
    "force": ...}`. 200 with the text and lines when the job finishes in time, else 202 with the job
    link. An identical earlier upload is answered with its page (`duplicate` true, `duplicate_of`
    says where it is) unless `force`.
    """

    parser_classes = [MultiPartParser, FormParser, ObjectJSONParser]
    throttle_scope = "uploads"

    def _image(self, request) -> tuple[bytes, str]:
        if upload := request.FILES.get("file"):
            if message := _over_limit(upload):
                raise ApiError(413, message)
            return upload.read(), upload.name
        encoded = request.data.get("image")
        if not isinstance(encoded, str) or not encoded:
            raise ApiError(400, "no image: send a multipart 'file' or JSON {\"image\": <base64>}")
        try:
            data = base64.b64decode(encoded.split(",", 1)[-1] if encoded.startswith("data:") else encoded,
                                    validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "image is not valid base64") from None
        return data, str(request.data.get("filename") or "upload")

    def _wait(self, request) -> float:
        raw = request.data.get("wait", request.query_params.get("wait", 0))
        try:
            wait = float(raw)
        except (TypeError, ValueError):
            raise ApiError(400, f"wait must be a number of seconds, got {raw!r}") from None
        if not 0 <= wait <= settings.QUIRE_TRANSCRIBE_MAX_WAIT_S:
            raise ApiError(400, f"wait must be between 0 and {settings.QUIRE_TRANSCRIBE_MAX_WAIT_S} seconds")
        return wait

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "properties": {
                     "file": {"type": "string", "format": "binary"}, "wait": {"type": "number"},
                     "force": {"type": "boolean"}}},
                 "application/json": {"type": "object", "properties": {
                     "image": {"type": "string", "format": "byte"}, "filename": {"type": "string"},
                     "wait": {"type": "number"}, "force": {"type": "boolean"}}}},
        responses={200: PageDetailSerializer, 202: JobSerializer},
    )
    def post(self, request):
        wait = self._wait(request)
        force = _flag(request, "force")
        data, filename = self._image(request)
        outcomes, errors = _accept(request, [(data, filename)], None, None, force=force)
        if not outcomes:
            raise ApiError(errors[0]["status"], errors[0]["detail"], "upload_rejected")
        accepted = outcomes[0].pages[0]
        job = accepted.job
        seen = UploadedJobSerializer(accepted, context={"request": request}).data
        seen = {"duplicate": seen["duplicate"], "duplicate_of": seen["duplicate_of"]}
        deadline = time.monotonic() + wait
        while not job.is_final and time.monotonic() < deadline:
            time.sleep(0.2)
            job.refresh_from_db()
        job_data = JobSerializer(job, context={"request": request}).data
        if job.state != JobState.SUCCEEDED:
            code = status.HTTP_200_OK if job.is_final else status.HTTP_202_ACCEPTED
            return Response({"job": job_data, "state": job.state, **seen}, status=code,
                            headers={"Location": str(job_data["url"])})
        page = Page.objects.prefetch_related(Prefetch("lines", Line.objects.order_by("index"))).get(pk=job.page_id)
        body = {**PageDetailSerializer(page, context={"request": request}).data, "job": job_data, "state": job.state,
                **seen}
        return Response(body, status=status.HTTP_200_OK)


class ObtainTokenView(ObtainAuthToken):
    """`POST /api/v1/auth/token/` (username, password) → `{"token": ...}`, throttled per client
    address at the `auth` rate (QUIRE_THROTTLE_AUTH): DRF's own view has no throttle at all, which
    left password guessing unlimited."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"
    parser_classes = [FormParser, MultiPartParser, ObjectJSONParser]
