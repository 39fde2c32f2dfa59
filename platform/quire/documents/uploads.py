"""Accept one uploaded file: decode it, store it, create its pages and queue one job per page.

`prepare_upload`: hash the bytes → recognise an identical earlier upload by the same user (unless
`force`) → `ingest.decode_upload` (type from the bytes, limits, normalisation; IngestError carries
the HTTP status). `store_upload`: store the original (content-addressed) → in one transaction,
one Page + normalised PNG + TranscriptionJob per good frame; the jobs are queued after commit.
Split in two so the caller creates a document only once a file has decoded.
"""

import hashlib
import re
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from quire.jobs.dispatch import enqueue_transcription
from quire.jobs.models import TranscriptionJob

from .ingest import IngestError, decode_upload, safe_display_name
from .models import Document, Page
from .storage import original_key, page_image_key, put_bytes


class UploadRejected(Exception):
    """The file as a whole cannot be accepted; `status_code` is the HTTP status to answer."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass
class AcceptedPage:
    """One page of an upload with its (latest) job. `duplicate`: the page of an identical earlier
    upload, returned instead of a new one; `other_document`: that page is not in the document the
    file was sent to (another document, or the upload asked for a new one)."""

    page: Page
    job: TranscriptionJob
    duplicate: bool = False
    other_document: bool = False


@dataclass
class UploadOutcome:
    """What became of one file: its pages with their jobs, and the frames that could not be read."""

    filename: str
    pages: list[AcceptedPage] = field(default_factory=list)
    frame_errors: list[dict] = field(default_factory=list)


def _named(message: str, filename: str) -> str:
    return message if filename and filename in message else f"{filename or 'upload'}: {message}"


def _extension(source_format: str) -> str:
    ext = source_format.lower()
    return ext if re.fullmatch(r"[a-z0-9]{1,8}", ext) else "bin"


def lock_uploads_of(user) -> None:
    """Serialise `user`'s uploads until the current transaction ends: a row lock (SELECT ... FOR
    UPDATE) on the user's row, so "is this file already there?" and "store it" are one atomic
    step (ten parallel uploads of one new file made two pages). Call inside transaction.atomic();
    SQLite ignores the lock (its writes are serialised, not its reads)."""
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))


def existing_upload(user, sha256: str, document_id: int | None = None) -> UploadOutcome | None:
    """The pages (each with its latest job, flagged `duplicate`) of an earlier upload of the file
    with SHA-256 `sha256` (hex) by `user`, or None; `document_id` is the document the file is
    sent to (None: a new one), see `_existing`. Inside `lock_uploads_of` the answer holds until
    the transaction ends."""
    return _existing(user, sha256, document_id)


def _existing(user, sha256: str, document_id: int | None = None) -> UploadOutcome | None:
    """The pages (each with its latest job) of an earlier upload of the same bytes by `user`.

    One page per frame of the file: when the file was stored more than once (`force`), the copy
    in document `document_id` when there is one, else the most recent copy. Each page is
    flagged `other_document` when it is not in `document_id` (always when that is None).
    """
    jobs = (TranscriptionJob.objects.for_user(user).filter(page__sha256=sha256).select_related("page__document")
            .order_by("page__frame_index", "page_id", "-created_at", "-id"))
    latest: dict[int, TranscriptionJob] = {}
    for job in jobs:
        latest.setdefault(job.page_id, job)
    if not latest:
        return None

    def preference(job: TranscriptionJob) -> tuple:
        return (job.page.document_id == document_id, job.page.created_at, job.page_id)

    per_frame: dict[int, TranscriptionJob] = {}
    for job in latest.values():
        frame = job.page.frame_index
        if frame not in per_frame or preference(job) > preference(per_frame[frame]):
            per_frame[frame] = job
    accepted = [AcceptedPage(page=job.page, job=job, duplicate=True,
                             other_document=job.page.document_id != document_id)
                for _, job in sorted(per_frame.items())]
    return UploadOutcome(filename=accepted[0].page.filename, pages=accepted)


@dataclass
class PreparedUpload:
    """A decoded file, ready to store: its bytes, hash and good frames."""

    data: bytes
    filename: str
    sha256: str
    frames: list
    frame_errors: list[dict]


def prepare_upload(user, data: bytes, filename: str, *, force: bool = False,
                   document_id: int | None = None) -> PreparedUpload | UploadOutcome:
    """Check limits, recognise a re-upload and decode the file (no writes).

    Returns the earlier UploadOutcome (pages flagged `duplicate`, and `other_document` when not in
    document `document_id`, the one the file is sent to; None: a new document) when the same user
    already uploaded identical bytes and `force` is False, else a PreparedUpload. `filename` is cleaned
    by `ingest.safe_display_name` and used for messages and display only. Raises UploadRejected:
    413 over the byte or pixel limit, 400/415 for empty, broken or non-image files (the message
    names the file; 413 also above QUIRE_MAX_PAGES_PER_UPLOAD TIFF frames / PDF pages).
    """
    filename = safe_display_name(filename)
    if len(data) > settings.QUIRE_MAX_UPLOAD_BYTES:
        raise UploadRejected(413, _named(
            f"file of {len(data)} bytes exceeds the limit of {settings.QUIRE_MAX_UPLOAD_BYTES} bytes", filename))
    sha256 = hashlib.sha256(data).hexdigest()
    if not force and (existing := _existing(user, sha256, document_id)) is not None:
        return existing
    try:
        frames = decode_upload(data, filename, max_pixels=settings.QUIRE_MAX_PIXELS, pdf_dpi=settings.QUIRE_PDF_DPI,
                               max_frames=settings.QUIRE_MAX_PAGES_PER_UPLOAD)
    except IngestError as exc:
        raise UploadRejected(exc.status_code, _named(exc.message, filename)) from exc
    good = [frame for frame in frames if frame.error is None]
    errors = [{"frame": frame.frame_index, "detail": _named(str(frame.error), filename)}
              for frame in frames if frame.error is not None]
    if not good:
        raise UploadRejected(400, "; ".join(e["detail"] for e in errors) or _named("no page found", filename))
    return PreparedUpload(data=data, filename=filename, sha256=sha256, frames=good, frame_errors=errors)


def store_upload(user, prepared: PreparedUpload, document: Document) -> UploadOutcome:
    """Store the original and one Page + normalised PNG + queued TranscriptionJob per good frame.

    The rows are written in one transaction; the jobs are sent to the queue after it commits.
    Raises storage.StorageUnavailable (the API answers 503); no rows remain in that case.
    """
    outcome = UploadOutcome(filename=prepared.filename, frame_errors=prepared.frame_errors)
    stored_original = put_bytes(
        original_key(user.pk, prepared.sha256, _extension(prepared.frames[0].source_format)), prepared.data,
        overwrite=False)
    with transaction.atomic():
        order = document.next_page_order()
        for offset, frame in enumerate(prepared.frames):
            page = Page.objects.create(
                document=document, order=order + offset, filename=prepared.filename[:255],
                frame_index=frame.frame_index, source_format=frame.source_format, sha256=prepared.sha256,
                original=stored_original, width=frame.width, height=frame.height,
            )
            page.image.name = put_bytes(page_image_key(page.pk), frame.png_bytes)
            page.save(update_fields=["image"])
            job = TranscriptionJob.objects.create(page=page)
            transaction.on_commit(partial(enqueue_transcription, job.pk))
            outcome.pages.append(AcceptedPage(page=page, job=job))
    return outcome
