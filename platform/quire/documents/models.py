"""Documents (named sets of pages owned by a user), pages, transcribed lines and line versions.

Geometry is stored in page pixels of the normalised image: `polygon` and `baseline` are lists of
[x, y] integer points, `bbox` is [x0, y0, x1, y1]. Confidences are floats in [0, 1].
"""

from django.conf import settings
from django.db import models


class DocumentQuerySet(models.QuerySet):
    def for_user(self, user) -> "DocumentQuerySet":
        """Documents owned by `user` (the single place where documents are scoped)."""
        return self.filter(owner=user)


class Document(models.Model):
    """A named set of pages, owned by one user."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents")
    name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    def next_page_order(self) -> int:
        """The `order` for a page appended to this document (0 for the first page)."""
        last = self.pages.aggregate(m=models.Max("order"))["m"]
        return 0 if last is None else last + 1


class PageQuerySet(models.QuerySet):
    def for_user(self, user) -> "PageQuerySet":
        """Pages in documents owned by `user`."""
        return self.filter(document__owner=user)


class Page(models.Model):
    """One page image: a frame of an upload, normalised to 8-bit grayscale.

    `original` is the uploaded file as received (shared by all frames of a multi-page upload),
    `image` the normalised PNG the pipeline reads. Storage keys are built from ids and hashes, never
    from the user's file name, which is kept only for display in `filename`.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="pages")
    order = models.PositiveIntegerField(help_text="Position of the page in its document, from 0.")
    filename = models.CharField(max_length=255, blank=True, help_text="Uploaded file name (display only).")
    frame_index = models.PositiveIntegerField(default=0, help_text="Frame (TIFF) or page (PDF) in the upload.")
    source_format = models.CharField(max_length=16, blank=True, help_text="Detected from the bytes, e.g. 'jpeg'.")
    sha256 = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the uploaded file (hex).")
    original = models.FileField(max_length=255)
    image = models.FileField(max_length=255, blank=True)
    width = models.PositiveIntegerField(help_text="Normalised image width in pixels.")
    height = models.PositiveIntegerField(help_text="Normalised image height in pixels.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PageQuerySet.as_manager()

    class Meta:
        ordering = ["document_id", "order", "id"]
        indexes = [models.Index(fields=["document", "order"])]

    def __str__(self) -> str:
        return f"{self.document.name} p.{self.order + 1}"


class LineQuerySet(models.QuerySet):
    def for_user(self, user) -> "LineQuerySet":
        """Lines of pages in documents owned by `user`."""
        return self.filter(page__document__owner=user)


class Line(models.Model):
    """One transcribed text line of a page, in reading order (`index` from 0)."""

    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="lines")
    index = models.PositiveIntegerField(help_text="Reading-order position on the page, from 0.")
    polygon = models.JSONField(default=list, help_text="[[x, y], ...] page pixels.")
    baseline = models.JSONField(default=list, help_text="[[x, y], ...] page pixels.")
    bbox = models.JSONField(default=list, help_text="[x0, y0, x1, y1] page pixels.")
    text = models.TextField(blank=True)
    confidence = models.FloatField(null=True, blank=True, help_text="Line confidence in [0, 1].")
    char_confidences = models.JSONField(default=list, help_text="One float in [0, 1] per character.")
    printed = models.BooleanField(
        default=False, help_text="Printed or typed text (letterhead, typewriter), not handwriting.")
    is_ground_truth = models.BooleanField(default=False, help_text="Corrected by a person.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = LineQuerySet.as_manager()

    class Meta:
        ordering = ["page_id", "index"]
        constraints = [models.UniqueConstraint(fields=["page", "index"], name="line_unique_index_per_page")]

    def __str__(self) -> str:
        return f"{self.page_id}:{self.index} {self.text[:40]}"


class LineVersion(models.Model):
    """A snapshot of a line's text and geometry, kept for every change (who and when)."""

    class Source(models.TextChoices):
        MODEL = "model", "model output"
        USER = "user", "user correction"

    line = models.ForeignKey(Line, on_delete=models.CASCADE, related_name="versions")
    source = models.CharField(max_length=8, choices=Source.choices)
    text = models.TextField(blank=True)
    polygon = models.JSONField(default=list)
    baseline = models.JSONField(default=list)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["line_id", "created_at", "id"]

    @classmethod
    def snapshot(cls, line: Line, source: str, user=None) -> "LineVersion":
        """Save the line's current text/polygon/baseline as a new version and return it."""
        return cls.objects.create(
            line=line, source=source, text=line.text, polygon=line.polygon, baseline=line.baseline, user=user
        )
