"""Property tests (Hypothesis): for any image size, pixel mode, format and damage, decode_upload
returns well-formed pages or raises IngestError, never anything else (issue 7).
"""

from __future__ import annotations

import io

import bad_files as bf
import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from quire.documents.ingest import ACCEPTED_FORMATS, DecodedPage, IngestError, decode_upload

MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I;16B", "I", "F"]
FORMATS = ["PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF"]
DAMAGE = ["none", "truncate", "flip", "zero-tail"]
SIGNATURES = [
    b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"GIF89a",
    b"RIFF\x10\x00\x00\x00WEBP", b"BM" + b"\x00" * 12 + b"\x28\x00\x00\x00", b"%PDF-1.4\n",
]

PROPERTY_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def make_image(mode: str, width: int, height: int, seed: int) -> Image.Image | None:
    """A random picture in ``mode``, or None where Pillow cannot build one."""
    rng = np.random.default_rng(seed)
    rgba = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")
    if mode == "I;16" or mode == "I;16B":
        values = rng.integers(0, 65536, (height, width), dtype=np.uint16)
        dtype = "<u2" if mode == "I;16" else ">u2"
        return Image.frombytes(mode, (width, height), values.astype(dtype).tobytes())
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32), "F")
    if mode == "I":
        return Image.fromarray(rng.integers(-(2**31), 2**31 - 1, (height, width), dtype=np.int32), "I")
    try:
        return rgba.convert(mode)
    except ValueError:
        return None


def damage(data: bytes, how: str, where: float) -> bytes:
    cut = int(len(data) * where)
    if how == "truncate":
        return data[: max(cut, 1)]
    if how == "flip":
        spot = min(max(cut, 8), len(data) - 1)  # keep the signature, hit the header or pixels
        return data[:spot] + bytes([data[spot] ^ 0xFF]) + data[spot + 1 :]
    if how == "zero-tail":
        return data[:cut] + b"\x00" * (len(data) - cut)
    return data


def check_outcome(data: bytes, **limits) -> list[DecodedPage] | IngestError:
    try:
        pages = decode_upload(data, "prop.bin", **limits)
    except IngestError as error:
        assert error.status_code in (400, 413, 415)
        assert error.message.startswith("prop.bin")
        return error
    assert pages and any(page.error is None for page in pages)
    for page in pages:
        assert page.source_format in ACCEPTED_FORMATS
        if page.error is None:
            assert isinstance(page.gray, np.ndarray) and page.gray.dtype == np.uint8
            assert page.gray.ndim == 2 and page.gray.shape == (page.height, page.width)
            assert page.width >= limits.get("min_side", 16) and page.height >= limits.get("min_side", 16)
            assert page.width * page.height <= limits.get("max_pixels", 60_000_000)
            assert Image.open(io.BytesIO(page.png_bytes)).size == (page.width, page.height)
        else:
            assert page.gray is None and page.error.status_code in (400, 413, 415)
    return pages


@PROPERTY_SETTINGS
@given(
    mode=st.sampled_from(MODES),
    fmt=st.sampled_from(FORMATS),
    width=st.integers(1, 48),
    height=st.integers(1, 48),
    seed=st.integers(0, 2**16),
    how=st.sampled_from(DAMAGE),
    where=st.floats(0.0, 1.0),
    min_side=st.integers(1, 20),
)
def test_any_image_gives_pages_or_ingest_error(mode, fmt, width, height, seed, how, where, min_side):
    image = make_image(mode, width, height, seed)
    assume(image is not None)
    try:
        data = bf.encode(image, fmt)
    except (OSError, ValueError, KeyError, TypeError):
        assume(False)  # Pillow cannot write this mode in this format
    outcome = check_outcome(damage(data, how, where), min_side=min_side, max_pixels=2_000)
    if how == "none":
        if min(width, height) >= min_side and width * height <= 2_000:
            assert isinstance(outcome, list), outcome  # an intact, in-limits image always decodes
            assert (outcome[0].width, outcome[0].height) == (width, height)
        else:
            assert isinstance(outcome, IngestError) and outcome.status_code in (400, 413)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    width_pt=st.floats(0.5, 400.0),
    height_pt=st.floats(0.5, 400.0),
    dpi=st.integers(36, 300),
    pages=st.integers(1, 3),
    how=st.sampled_from(DAMAGE),
    where=st.floats(0.0, 1.0),
)
def test_any_pdf_gives_pages_or_ingest_error(width_pt, height_pt, dpi, pages, how, where):
    data = bf.write_pdf([{"size": (round(width_pt, 2), round(height_pt, 2)), "content": bf.BLACK_SQUARE}] * pages)
    check_outcome(damage(data, how, where), pdf_dpi=dpi, max_pixels=400_000)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.binary(min_size=0, max_size=300), st.sampled_from(SIGNATURES))
def test_random_bytes_behind_any_signature(tail, signature):
    check_outcome(signature + tail)
