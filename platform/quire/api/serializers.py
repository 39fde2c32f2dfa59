"""Serializers of the API: documents, pages (with lines), jobs, line corrections, upload answers.

URLs are absolute (built from the request). Nested data is read from prefetched relations only,
so list and detail views run a fixed number of queries.
"""

import unicodedata

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from quire.documents.models import Document, Line, LineVersion, Page
from quire.jobs.models import JobState, TranscriptionJob

EXPORT_FORMATS = ("txt", "json", "page", "alto")
MAX_NAME_CHARS = 255  # Document.name, Page.filename


def text_problem(value: str, *, max_length: int) -> str | None:
    """Why `value` cannot be stored as one line of user text, or None when it can.

    Refused: more than `max_length` characters, control characters (Unicode Cc: NUL, which
    PostgreSQL cannot store, newline, tab, ...; named by code point) and lone surrogates (Cs,
    which cannot be encoded as UTF-8).
    """
    if len(value) > max_length:
        return f"at most {max_length} characters, got {len(value)}"
    bad = sorted({ch for ch in value if unicodedata.category(ch) in ("Cc", "Cs")})
    if bad:
        names = ", ".join(f"U+{ord(ch):04X}" for ch in bad[:8]) + (", ..." if len(bad) > 8 else "")
        return f"contains control characters ({names}); newlines, tabs and NUL are not allowed"
    return None


def plain_text(value, name: str, *, max_length: int = MAX_NAME_CHARS) -> str:
    """`value` when it is a string fit for the database (see `text_problem`); else raises
    serializers.ValidationError({name: [message]}) (HTTP 400 naming the field)."""
    if not isinstance(value, str):
        raise serializers.ValidationError({name: [f"must be a string, got {type(value).__name__}"]})
    if problem := text_problem(value, max_length=max_length):
        raise serializers.ValidationError({name: [problem]})
    return value


def _url(name: str, pk: int, request, suffix: str = "") -> str:
    return reverse(f"api:{name}", kwargs={"pk": pk}, request=request) + suffix


class DocumentSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:document-detail")
    page_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Document
        fields = ["id", "url", "name", "page_count", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_name(self, value: str) -> str:
        if problem := text_problem(value, max_length=MAX_NAME_CHARS):
            raise serializers.ValidationError(problem)
        return value


class LineSerializer(serializers.ModelSerializer):
    class Meta:
        model = Line
        fields = ["id", "index", "text", "confidence", "char_confidences", "polygon", "baseline", "bbox",
                  "printed", "is_ground_truth", "updated_at"]
        read_only_fields = fields


class LineVersionSerializer(serializers.ModelSerializer):
    """One kept version of a line: the model's output (`source` "model", no user) or a person's
    correction (`source` "user", with the username); polygon/baseline in page pixels."""

    user = serializers.CharField(source="user.username", default=None, read_only=True)

    class Meta:
        model = LineVersion
        fields = ["id", "source", "text", "polygon", "baseline", "user", "created_at"]
        read_only_fields = fields


class PageSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:page-detail")
    image_url = serializers.SerializerMethodField()
    state = serializers.ChoiceField(choices=JobState.choices, read_only=True, allow_null=True,
                                    help_text="State of the page's latest transcription job.")

    class Meta:
        model = Page
        fields = ["id", "url", "document", "order", "filename", "frame_index", "source_format", "width", "height",
                  "sha256", "state", "image_url", "created_at"]
        read_only_fields = fields

    def get_image_url(self, page: Page) -> str:
        return _url("page-image", page.pk, self.context.get("request"))


class PageDetailSerializer(PageSerializer):
    lines = LineSerializer(many=True, read_only=True)
    text = serializers.SerializerMethodField()

    class Meta(PageSerializer.Meta):
        fields = PageSerializer.Meta.fields + ["text", "lines"]
        read_only_fields = fields

    def get_text(self, page: Page) -> str:
        return "\n".join(line.text for line in page.lines.all())


MAX_GEOMETRY_POINTS = 5000  # per polygon or baseline; a detected line has tens


def _points(value, name: str) -> list[list[int]]:
    if not isinstance(value, list) or len(value) < 2:
        raise serializers.ValidationError(f"{name} must be a list of at least 2 [x, y] points")
    if len(value) > MAX_GEOMETRY_POINTS:
        raise serializers.ValidationError(f"{name} has {len(value)} points; at most {MAX_GEOMETRY_POINTS}")
    for point in value:
        if (not isinstance(point, list) or len(point) != 2
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in point)):
            raise serializers.ValidationError(f"{name} points must be [x, y] pairs of non-negative integers")
    return value


def polygon_area(points: list[list[int]]) -> float:
    """Area in square pixels of a simple polygon given as [[x, y], ...] (shoelace formula)."""
    twice = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]))
    return abs(twice) / 2


class StrictCharField(serializers.CharField):
    """A CharField that refuses non-strings (DRF's turns 123 into "123" silently)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class LineUpdateSerializer(serializers.ModelSerializer):
    """PATCH body: `text` (one line: at most QUIRE_MAX_LINE_CHARS characters, no newline, tab or
    other control character, so every export keeps one line per line) and optionally
    `polygon`/`baseline` in page pixels (inside the page, at most MAX_GEOMETRY_POINTS points; the
    polygon with a non-zero area). An empty body or an unknown field is a 400."""

    text = StrictCharField(allow_blank=True, required=False)

    class Meta:
        model = Line
        fields = ["text", "polygon", "baseline"]

    def validate(self, attrs):
        data = self.initial_data
        if not data:
            raise serializers.ValidationError(f"nothing to change: send {', '.join(self.Meta.fields)}")
        unknown = sorted(set(data) - set(self.Meta.fields))
        if unknown:
            raise serializers.ValidationError(
                f"unknown field(s) {', '.join(unknown)}; a line takes {', '.join(self.Meta.fields)}")
        return attrs

    def validate_text(self, value: str) -> str:
        if problem := text_problem(value, max_length=settings.QUIRE_MAX_LINE_CHARS):
            raise serializers.ValidationError(problem)
        return value

    def _inside(self, points: list[list[int]], name: str) -> list[list[int]]:
        page = self.instance.page
        if any(x > page.width or y > page.height for x, y in points):
            raise serializers.ValidationError(f"{name} lies outside the page ({page.width}x{page.height} pixels)")
        return points

    def validate_polygon(self, value):
        points = self._inside(_points(value, "polygon"), "polygon")
        if len(points) < 3:
            raise serializers.ValidationError("polygon needs at least 3 points")
        if polygon_area(points) == 0:
            raise serializers.ValidationError("polygon has zero area (its points are on one line)")
        return points

    def validate_baseline(self, value):
        return self._inside(_points(value, "baseline"), "baseline")


class JobSerializer(serializers.ModelSerializer):
    """A transcription job: state, progress, timings, attempts, error and (when done) result link."""

    url = serializers.HyperlinkedIdentityField(view_name="api:job-detail")
    page_url = serializers.SerializerMethodField()
    timings = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    result_url = serializers.SerializerMethodField()

    class Meta:
        model = TranscriptionJob
        fields = ["id", "url", "page", "page_url", "state", "progress", "created_at", "started_at", "finished_at",
                  "timings", "attempts", "error", "models_used", "warnings", "result_url"]
        read_only_fields = fields

    def get_page_url(self, job: TranscriptionJob) -> str:
        return _url("page-detail", job.page_id, self.context.get("request"))

    def get_timings(self, job: TranscriptionJob) -> dict:
        """Seconds: `queued` (created → started), `run` (started → finished), `pipeline` stages."""
        out: dict = {"pipeline": job.timings or {}}
        if job.started_at:
            out["queued"] = round((job.started_at - job.created_at).total_seconds(), 3)
            if job.finished_at:
                out["run"] = round((job.finished_at - job.started_at).total_seconds(), 3)
        return out

    def get_error(self, job: TranscriptionJob) -> dict | None:
        if not job.error_code:
            return None
        return {"code": job.error_code, "message": job.error_message}

    def get_result_url(self, job: TranscriptionJob) -> str | None:
        if job.state != JobState.SUCCEEDED:
            return None
        return _url("page-export", job.page_id, self.context.get("request"), "?format=json")


class DuplicateOfSerializer(serializers.Serializer):
    """Where the page of an identical earlier upload is (answered instead of a new page), and how
    to upload the file anyway: send the same request again with `force=1`."""

    document = serializers.IntegerField(source="page.document_id")
    document_name = serializers.CharField(source="page.document.name")
    page = serializers.IntegerField(source="page.pk")
    page_number = serializers.SerializerMethodField(help_text="Its page number in its document, from 1 (p. N).")
    web_url = serializers.SerializerMethodField(help_text="The page in the web interface.")
    other_document = serializers.BooleanField(
        help_text="The page is not in the document the file was sent to (or a new document was asked for).")
    upload_anyway = serializers.SerializerMethodField(help_text="Fields to add to the request to upload anyway.")
    detail = serializers.SerializerMethodField()

    def get_page_number(self, accepted) -> int:
        return accepted.page.order + 1

    def get_web_url(self, accepted) -> str:
        return reverse("web:page", kwargs={"pk": accepted.page.pk}, request=self.context.get("request"))

    def get_upload_anyway(self, accepted) -> dict:
        return {"force": "1"}

    def get_detail(self, accepted) -> str:
        page = accepted.page
        where = (f'page {self.get_page_number(accepted)} of document {page.document_id} "{page.document.name}" '
                 f"({self.get_web_url(accepted)})" if accepted.other_document
                 else f"page {self.get_page_number(accepted)} of this document")
        return (f"{page.filename or 'this file'} was uploaded before: it is {where}; no page was added. "
                f"Send it again with force=1 to upload it anyway.")


class UploadedJobSerializer(serializers.Serializer):
    """One accepted page of an upload, with its job (`duplicate`: an identical earlier upload;
    `duplicate_of`: where that page is and how to upload anyway, null unless `duplicate`)."""

    id = serializers.IntegerField(source="job.pk")
    url = serializers.SerializerMethodField()
    state = serializers.CharField(source="job.state")
    page = serializers.IntegerField(source="page.pk")
    page_url = serializers.SerializerMethodField()
    document = serializers.IntegerField(source="page.document_id")
    frame_index = serializers.IntegerField(source="page.frame_index")
    filename = serializers.CharField(source="page.filename")
    duplicate = serializers.BooleanField()
    duplicate_of = serializers.SerializerMethodField()

    def get_url(self, accepted) -> str:
        return _url("job-detail", accepted.job.pk, self.context.get("request"))

    def get_page_url(self, accepted) -> str:
        return _url("page-detail", accepted.page.pk, self.context.get("request"))

    @extend_schema_field(DuplicateOfSerializer(allow_null=True))
    def get_duplicate_of(self, accepted) -> dict | None:
        if not accepted.duplicate:
            return None
        return DuplicateOfSerializer(accepted, context=self.context).data


class PlacedLineSerializer(serializers.ModelSerializer):
    """A line with where it is (document, page, reading-order index, box in page pixels) and links
    to it: the rows of search results and of the review list."""

    line = serializers.IntegerField(source="pk", read_only=True)
    line_index = serializers.IntegerField(source="index", read_only=True)
    page_number = serializers.SerializerMethodField(help_text="The page's number in its document, from 1.")
    document = serializers.IntegerField(source="page.document_id", read_only=True)
    document_name = serializers.CharField(source="page.document.name", read_only=True)
    page_url = serializers.SerializerMethodField()
    web_url = serializers.SerializerMethodField(help_text="The page in the web interface, this line selected.")

    class Meta:
        model = Line
        fields = ["line", "text", "confidence", "is_ground_truth", "line_index", "bbox", "page", "page_number",
                  "document", "document_name", "page_url", "web_url"]
        read_only_fields = fields

    def get_page_number(self, line) -> int:
        return line.page.order + 1

    def get_page_url(self, line) -> str:
        return _url("page-detail", line.page_id, self.context.get("request"))

    def get_web_url(self, line) -> str:
        url = reverse("web:page", kwargs={"pk": line.page_id}, request=self.context.get("request"))
        return f"{url}#line-{line.pk}"


class SearchHitSerializer(PlacedLineSerializer):
    """One line matching a search (a Line with a `score` attribute: 100 = contains the query)."""

    score = serializers.FloatField(read_only=True)

    class Meta(PlacedLineSerializer.Meta):
        fields = PlacedLineSerializer.Meta.fields + ["score"]
        read_only_fields = fields


class SearchResultSerializer(serializers.Serializer):
    query = serializers.CharField()
    fuzzy = serializers.BooleanField()
    count = serializers.IntegerField()
    results = SearchHitSerializer(many=True)
