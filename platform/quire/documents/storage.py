"""Storage keys and byte I/O on Django's default storage (S3 or filesystem).

Keys are built from ids and content hashes only, never from a user's file name. Any failure to
reach the storage (network, S3 error, disk) is raised as `StorageUnavailable`, which the API
answers with 503 and the worker retries.
"""

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

try:  # botocore is there whenever the S3 backend is (django-storages[s3]).
    from botocore.exceptions import BotoCoreError, ClientError

    _STORAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, BotoCoreError, ClientError)
except ImportError:  # pragma: no cover - filesystem-only installs
    _STORAGE_ERRORS = (OSError,)


class StorageUnavailable(Exception):
    """The storage could not be read or written; `__cause__` holds the original error."""


def original_key(user_id: int, sha256: str, extension: str) -> str:
    """Key of an uploaded file: content-addressed per user, e.g. `originals/7/<sha256>.pdf`."""
    return f"originals/{user_id}/{sha256}.{extension}"


def page_image_key(page_id: int) -> str:
    """Key of a page's normalised 8-bit grayscale PNG."""
    return f"pages/{page_id}/normalised.png"


def result_key(job_id: int) -> str:
    """Key of a transcription job's result JSON."""
    return f"results/{job_id}/result.json"


def put_bytes(key: str, data: bytes, *, overwrite: bool = True) -> str:
    """Write `data` under `key` and return the stored name (== key).

    With `overwrite=False` an existing object is kept as is (content-addressed keys).
    Raises StorageUnavailable.
    """
    try:
        if default_storage.exists(key):
            if not overwrite:
                return key
            default_storage.delete(key)
        return default_storage.save(key, ContentFile(data))
    except _STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"storage unavailable: could not write {key}: {exc}") from exc


def get_bytes(key: str) -> bytes:
    """Read the object stored under `key`. Raises StorageUnavailable (also for a missing object)."""
    try:
        with default_storage.open(key, "rb") as handle:
            return handle.read()
    except _STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"storage unavailable: could not read {key}: {exc}") from exc
