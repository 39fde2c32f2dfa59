"""Upload ingest: turn the bytes of one uploaded file into normalised 8-bit grayscale pages.

This is the step between the upload view and the job (see docs/ARCHITECTURE.md): it decides what
the file is from its bytes (never its name), refuses what it cannot or must not decode with an
:class:`IngestError` that carries an HTTP status and a message naming the problem and the file,
and returns one :class:`DecodedPage` per page (TIFF frame, PDF page) otherwise.

The module is pure (Pillow, numpy, pypdfium2; no Django), so that the API view, the worker and the
embedded ``transcribe`` command share it and unit tests call it directly. Settings
(``QUIRE_MAX_PIXELS``, ``QUIRE_PDF_DPI``) are passed in as arguments by the caller.

Defined outcomes (tests/ingest/ checks each one):

====================================================  =========================================
input                                                 outcome
====================================================  =========================================
0 bytes                                               400 ``empty file``
bytes of a type we do not take (HTML, ZIP, SVG...)    415 naming the detected type
accepted magic bytes, undecodable / truncated data     400 ``truncated or corrupt``
declared size > ``max_pixels`` (PDF: at ``pdf_dpi``)  413 naming the limit, before decoding pixels
either side < ``min_side`` pixels                     400 ``too small``
more than ``max_frames`` frames / PDF pages           413 naming the limit
pixel layout Pillow cannot decode (e.g. float RGB)    415 ``unsupported ... variant``
password-protected PDF                                400 ``password-protected``
multi-page file with some broken pages                good pages kept; a broken page is a
                                                      DecodedPage with ``error`` set
multi-page file where every page is broken            the error of the first page (one page) or
                                                      400 ``no readable page``
====================================================  =========================================

Everything a decoder library raises on hostile bytes becomes an IngestError; no other exception
leaves :func:`decode_upload` (property-tested with Hypothesis in tests/ingest/).
"""

from __future__ import annotations

import io
import logging
import math
import posixpath
import re
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pypdfium2 as pdfium
from PIL import Image

logger = logging.getLogger(__name__)

#: Formats decode_upload accepts, as returned by :func:`sniff_format`.
ACCEPTED_FORMATS = ("png", "jpeg", "tiff", "webp", "bmp", "gif", "pdf")

#: Our format name -> Pillow plugin name; Image.open is restricted to the sniffed plugin, so bytes
#: that merely start like a PNG are never handed to another (riskier) Pillow plugin.
_PILLOW_FORMAT = {
    "png": "PNG",
    "jpeg": "JPEG",
    "tiff": "TIFF",
    "webp": "WEBP",
    "bmp": "BMP",
    "gif": "GIF",
}

#: Longest name safe_display_name returns, in characters (fits a 255-character CharField).
MAX_DISPLAY_NAME = 200

#: EXIF tag 0x0112 (Orientation) -> the transpose that displays the stored pixels upright.
#: Source: EXIF 2.32 (CIPA DC-008-2019) section 4.6.5, tag 274; the same table as
#: PIL.ImageOps.exif_transpose, which the tests use as the reference.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# PDFium is not thread-safe (pypdfium2 docs, "Thread incompatibility"): every call into it, from
# opening a document to freeing a bitmap, runs under this lock. Processes need nothing.
_PDFIUM_LOCK = threading.Lock()

# TIFF tags read for the bit depth of integer samples (TIFF 6.0 spec, section 8 and page 80).
_TIFF_BITS_PER_SAMPLE = 258
_TIFF_SAMPLE_FORMAT = 339  # 1 unsigned, 2 signed, 3 float


class IngestError(Exception):
    """An upload that cannot become pages, with the HTTP answer it deserves.

    Attributes:
        message: one line naming the problem and the file (built from safe_display_name only).
        status_code: 400 (empty, truncated, corrupt, too small, no readable page),
            413 (declared pixel size or page count above the limit) or 415 (not a type we accept,
            or a pixel layout the decoder cannot read).
        code: short machine-readable reason (``empty``, ``unsupported_type``,
            ``unsupported_variant``, ``corrupt``, ``too_large``, ``too_many_pages``,
            ``too_small``, ``encrypted``, ``no_readable_page``) for job error codes.
    """

    def __init__(self, message: str, status_code: int = 400, code: str = "corrupt"):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code

    def __repr__(self) -> str:
        return f"IngestError({self.status_code}, {self.code!r}, {self.message!r})"


@dataclass
class DecodedPage:
    """One page of an upload, normalised.

    Attributes:
        gray: (height, width) uint8 array, 8-bit grayscale (0 black, 255 white), EXIF orientation
            applied, alpha flattened onto white. None when ``error`` is set.
        png_bytes: ``gray`` encoded as an 8-bit grayscale PNG; b"" when ``error`` is set.
        width, height: size of ``gray`` in pixels (the declared size, or 0 if unknown, when
            ``error`` is set).
        frame_index: 0-based TIFF frame / PDF page index within the upload.
        source_format: the sniffed format, one of ACCEPTED_FORMATS.
        error: for a broken page of a multi-page file, why it was skipped; the file's other pages
            are kept.
    """

    gray: np.ndarray | None
    png_bytes: bytes
    width: int
    height: int
    frame_index: int
    source_format: str
    error: IngestError | None = None


# --------------------------------------------------------------------------------------------
# Names and types


# Bidirectional marks, embeddings, overrides and isolates (Unicode UAX #9, table 4).
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def safe_display_name(filename: object) -> str:
    """Return a user file name fit for messages and the database, never for a storage path.

    Keeps the last path component only (``/`` and ``\\`` both separate), drops control
    characters (Unicode Cc), unpaired surrogates (Cs, from undecodable bytes) and bidirectional
    overrides (which can disguise ``gpj.exe`` as ``exe.jpg``), normalises to NFC, keeps every
    other character (accents, CJK, emoji), and caps the length at MAX_DISPLAY_NAME characters,
    keeping the extension. Empty, ``.`` and ``..`` results become ``upload``.

    Args:
        filename: the client's name for the file (str; bytes are decoded as UTF-8 with
            replacement; anything else gives ``upload``).

    Returns:
        A non-empty str of at most MAX_DISPLAY_NAME characters without ``/``, ``\\`` or controls.
    """
    if isinstance(filename, (bytes, bytearray)):
        filename = bytes(filename).decode("utf-8", errors="replace")
    if not isinstance(filename, str):
        return "upload"
    cleaned = "".join(
        ch
        for ch in filename
        if unicodedata.category(ch) not in ("Cc", "Cs") and ch not in _BIDI_CONTROLS
    )
    cleaned = unicodedata.normalize("NFC", cleaned.replace("\\", "/"))
    name = posixpath.basename(cleaned).strip()
    if name in ("", ".", ".."):
        return "upload"
    if len(name) > MAX_DISPLAY_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            name = stem[: MAX_DISPLAY_NAME - len(ext) - 2] + "…." + ext
        else:
            name = name[: MAX_DISPLAY_NAME - 1] + "…"
    return name


def sniff_format(data: bytes) -> str | None:
    """Name the accepted image format of ``data`` from its magic bytes, or None.

    Signatures: PNG (ISO/IEC 15948 5.2), JPEG SOI + marker (ITU T.81 B.1.1.2), TIFF and BigTIFF
    byte-order headers (TIFF 6.0 section 2), RIFF/WEBP (RFC 9649), BMP ``BM`` followed by a known
    DIB header size (the check Pillow's BmpImagePlugin makes), GIF87a/89a, and ``%PDF-`` within
    the first 1024 bytes (where PDF readers look for it, ISO 32000-1 annex H.3 note 3).

    Returns:
        One of ACCEPTED_FORMATS, or None for anything else (see :func:`describe_unaccepted`).
    """
    head = bytes(data[:1024])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and len(head) >= 18:
        if int.from_bytes(head[14:18], "little") in (12, 16, 40, 52, 56, 64, 108, 124):
            return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if b"%PDF-" in head:
        return "pdf"
    return None


def describe_unaccepted(data: bytes) -> str:
    """Say in words what ``data`` looks like, for the 415 message of an unaccepted upload.

    Recognises common wrong uploads (HTML, SVG, XML, JSON, plain text, ZIP/Office, PostScript,
    HEIF/AVIF, JPEG 2000, JPEG XL, PSD, ICO, DjVu, executables, ...); otherwise
    ``unrecognised binary data``. Detection is from bytes only.
    """
    head = bytes(data[:2048])
    binary_signatures = (
        (b"PK\x03\x04", "a ZIP archive (or DOCX/ODT/EPUB)"),
        (b"\x1f\x8b", "gzip-compressed data"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
        (b"Rar!\x1a\x07", "a RAR archive"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image"),
        (b"\xffO\xffQ", "a JPEG 2000 codestream"),
        (b"\xff\x0a", "a JPEG XL image"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "a JPEG XL image"),
        (b"8BPS", "a Photoshop document"),
        (b"\x00\x00\x01\x00", "a Windows icon"),
        (b"AT&TFORM", "a DjVu document"),
        (b"%!PS", "a PostScript file"),
        (b"\xc5\xd0\xd3\xc6", "an EPS file"),
        (b"MZ", "a Windows executable"),
        (b"\x7fELF", "an ELF executable"),
        (b"SQLite format 3\x00", "an SQLite database"),
        (b"OggS", "an Ogg media file"),
        (b"{\\rtf", "an RTF document"),
    )
    for signature, description in binary_signatures:
        if head.startswith(signature):
            return description
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "an AVIF image"
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "a HEIF/HEIC image"
        return "an ISO media file (MP4/MOV)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the end of the window.
        try:
            text = head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return "unrecognised binary data"
    if "\x00" in text:
        return "unrecognised binary data"
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in lowered:
        return "an HTML document"
    if "<svg" in lowered:
        return "an SVG image"
    if lowered.startswith("<?xml") or lowered.startswith("<"):
        return "an XML document"
    if lowered.startswith(("{", "[")):
        return "JSON or other text"
    return "plain text"


# --------------------------------------------------------------------------------------------
# Decoding


def decode_upload(
    data: bytes,
    filename: str,
    *,
    max_pixels: int = 60_000_000,
    pdf_dpi: int = 200,
    min_side: int = 16,
    max_frames: int = 500,
) -> list[DecodedPage]:
    """Decode one uploaded file into normalised 8-bit grayscale pages.

    PNG, JPEG, WebP, BMP and GIF give one page (the first frame of an animation); TIFF gives one
    page per frame; PDF one page per page, rendered by PDFium at ``pdf_dpi``. Each page's size
    is checked against ``max_pixels`` and ``min_side`` before its pixels are decoded (for PDF,
    from the page size in points: ceil(pt * dpi / 72) pixels a side). Conversions to gray:
    1-bit and palette via Pillow; alpha composited onto white; CMYK via Pillow (Adobe-inverted
    JPEG CMYK is handled by Pillow; CMYK JPEG without the Adobe APP14 marker is stored
    uninverted and is inverted back here); 16/12-bit gray scaled by the declared bit depth
    (``v * 255 / (2**bits - 1)``, not clipped at 255 as Pillow's I;16 -> L conversion does);
    float images scaled by the range their values occupy (see _float_to_gray); everything else
    through Pillow's ITU-R 601-2 luma (``L = R*299/1000 + G*587/1000 + B*114/1000``).

    Args:
        data: the file's bytes.
        filename: the client's name; used only through safe_display_name, in messages.
        max_pixels: largest width * height accepted per page (QUIRE_MAX_PIXELS); larger is 413.
        pdf_dpi: rendering resolution for PDF pages, dots per inch (QUIRE_PDF_DPI).
        min_side: smallest width and height accepted, in pixels; smaller is 400.
        max_frames: most TIFF frames / PDF pages accepted; more is 413.

    Returns:
        At least one DecodedPage without error, in frame order; broken pages of a multi-page
        file appear in place with ``error`` set.

    Raises:
        IngestError: for a file that gives no usable page (see the module docstring for each
            status). No other exception escapes for any input bytes.
    """
    name = safe_display_name(filename)
    data = bytes(data)
    if not data:
        raise IngestError(f"{name}: empty file (0 bytes)", 400, "empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise IngestError(
            f"{name}: unsupported file type: the content is {describe_unaccepted(data)}; "
            "accepted types are PNG, JPEG, TIFF, WebP, BMP, GIF and PDF",
            415,
            "unsupported_type",
        )
    limits = _Limits(max_pixels=max_pixels, min_side=min_side, max_frames=max_frames)
    if fmt == "pdf":
        pages = _decode_pdf(data, name, limits, pdf_dpi)
    else:
        pages = _decode_raster(data, fmt, name, limits)
    return _keep_good_pages(pages, name)


@dataclass(frozen=True)
class _Limits:
    max_pixels: int
    min_side: int
    max_frames: int


def _keep_good_pages(pages: list[DecodedPage], name: str) -> list[DecodedPage]:
    """Return ``pages`` if one is good; else raise the (first) error."""
    if any(page.error is None for page in pages):
        return pages
    if len(pages) == 1 and pages[0].error is not None:
        raise pages[0].error
    errors = [page.error for page in pages if page.error is not None]
    statuses = {error.status_code for error in errors}
    status = statuses.pop() if len(statuses) == 1 else 400
    first = errors[0].message if errors else "no pages"
    raise IngestError(
        f"{name}: no readable page among {len(pages)} (first: {first})", status, "no_readable_page"
    )


def _where(name: str, index: int, multi: bool) -> str:
    return f"{name}, page {index + 1}" if multi else name


def _check_size(
    width: int, height: int, where: str, limits: _Limits, unit: str = "", noun: str = "image"
) -> None:
    """Refuse a declared size above the pixel limit (413) or below the side limit (400)."""
    if width * height > limits.max_pixels:
        raise IngestError(
            f"{where}: {noun} is {width} × {height} = {width * height:,} pixels{unit}, above the "
            f"limit of {limits.max_pixels:,} pixels",
            413,
            "too_large",
        )
    if min(width, height) < limits.min_side:
        raise IngestError(
            f"{where}: {noun} is too small ({width} × {height} pixels{unit}); each side must be "
            f"at least {limits.min_side} pixels",
            400,
            "too_small",
        )


@contextmanager
def _decoder_errors(where: str, fmt: str, max_pixels: int) -> Iterator[None]:
    """Turn whatever a decoder library raises on bad bytes into an IngestError.

    Pillow's plugins raise OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
    KeyError, TypeError, ZeroDivisionError... on hostile input, so everything but IngestError
    is caught here; the original is logged for diagnosis. DecompressionBombError/Warning (Pillow's
    own, process-wide limit, see Image.MAX_IMAGE_PIXELS, raised inside Image.open before our
    check) and MemoryError become 413; the message names the smaller of ``max_pixels`` and
    Pillow's limit. Messages Pillow uses for valid-but-unsupported layouts become 415.
    """
    try:
        yield
    except IngestError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses above 2 * MAX_IMAGE_PIXELS (warns above 1x) inside Image.open, before
        # our own check can run; name the limit that actually applies.
        pillow_limit = Image.MAX_IMAGE_PIXELS or max_pixels
        if isinstance(exc, Image.DecompressionBombError):
            pillow_limit *= 2
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise IngestError(
            f"{where}: image is {size}, above the limit of "
            f"{min(max_pixels, pillow_limit):,} pixels",
            413,
            "too_large",
        ) from exc
    except MemoryError as exc:
        raise IngestError(
            f"{where}: image is too large to decode in memory", 413, "too_large"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the decoder boundary; see the docstring
        logger.info("ingest: %s (%s) failed to decode: %r", where, fmt, exc)
        text = str(exc)
        if _is_unsupported_variant(text):
            raise IngestError(
                f"{where}: unsupported {fmt.upper()} variant ({text}); save it as 8-bit or "
                "16-bit grayscale or RGB and upload again",
                415,
                "unsupported_variant",
            ) from exc
        raise IngestError(
            f"{where}: truncated or corrupt {fmt.upper()} data "
            f"({text[:200] or type(exc).__name__})",
            400,
            "corrupt",
        ) from exc


def _is_unsupported_variant(text: str) -> bool:
    """Whether a Pillow error message says the layout is valid but not supported.

    Messages from PIL/TiffImagePlugin.py (``unknown pixel mode``, ``Unknown ... not supported``),
    PIL/ImageFile.py (``decoder ... not available``) and Image.convert (``conversion from``).
    """
    lowered = text.lower()
    keys = ("unknown pixel mode", "not supported", "not available", "conversion from", "unsupported")
    return any(key in lowered for key in keys)


def _decode_raster(data: bytes, fmt: str, name: str, limits: _Limits) -> list[DecodedPage]:
    """Decode PNG/JPEG/TIFF/WebP/BMP/GIF bytes with Pillow (TIFF: every frame)."""
    with _decoder_errors(name, fmt, limits.max_pixels):
        image = _open_image(data, fmt)
    with image:
        if fmt != "tiff":
            return [_decode_frame(image, fmt, 0, name, limits)]
        count = _count_tiff_frames(image, name, limits)
        multi = count > 1
        pages = []
        for index in range(count):
            where = _where(name, index, multi)
            width = height = 0
            try:
                with _decoder_errors(where, fmt, limits.max_pixels):
                    image.seek(index)
                    width, height = (int(side) for side in image.size)
                pages.append(_decode_frame(image, fmt, index, where, limits))
            except IngestError as error:
                if not multi:
                    raise
                pages.append(DecodedPage(None, b"", width, height, index, fmt, error))
        return pages


def _open_image(data: bytes, fmt: str) -> Image.Image:
    """Image.open restricted to the sniffed format's plugin (lazy: reads headers only).

    When Pillow gives up with UnidentifiedImageError, the plugin is called once more on its own
    to raise its actual reason (Image.open swallows it), e.g. TIFF ``unknown pixel mode``, so
    that an unsupported layout (415) is told apart from a corrupt file (400).
    """
    pillow_format = _PILLOW_FORMAT[fmt]
    try:
        return Image.open(io.BytesIO(data), formats=[pillow_format])
    except Image.UnidentifiedImageError as unidentified:
        factory = Image.OPEN.get(pillow_format, (None, None))[0]
        if factory is None:
            raise
        try:
            factory(io.BytesIO(data), "").close()
        except Exception as reason:  # noqa: BLE001 - the plugin's own reason, classified by caller
            raise reason from unidentified
        raise


def _count_tiff_frames(image: Image.Image, name: str, limits: _Limits) -> int:
    """Count the frames of a TIFF by walking its IFD chain, at most max_frames + 1 steps.

    A frame whose IFD cannot be read ends the chain; it is counted (it becomes an error page).
    Raises IngestError 413 above max_frames, before any pixels are decoded.
    """
    count = 0
    while count <= limits.max_frames:
        try:
            image.seek(count)
        except EOFError:
            break
        except Exception:  # noqa: BLE001 - a broken IFD; frame `count` is reported when decoded
            if count == 0:
                break
            count += 1
            break
        count += 1
    if count > limits.max_frames:
        raise IngestError(
            f"{name}: more than {limits.max_frames} pages in one file; split it and upload "
            "the parts",
            413,
            "too_many_pages",
        )
    try:
        image.seek(0)
    except Exception:  # noqa: BLE001 - frame 0 is decoded (and reported) by the caller
        pass
    return max(count, 1)


def _decode_frame(
    image: Image.Image, fmt: str, index: int, where: str, limits: _Limits
) -> DecodedPage:
    """Check, decode, convert and orient the current frame of ``image``."""
    width, height = image.size
    _check_size(width, height, where, limits)
    with _decoder_errors(where, fmt, limits.max_pixels):
        image.load()
        gray = _to_gray(image, fmt, where)
        # Read after load(): Pillow's TIFF plugin applies its Orientation tag itself in
        # load_end() and removes it, so a TIFF is never turned twice.
        orientation = _orientation(image)
        if orientation in _ORIENTATION_TRANSPOSE:
            gray = gray.transpose(_ORIENTATION_TRANSPOSE[orientation])
        array = np.array(gray, dtype=np.uint8)
    return _page(array, index, fmt)


def _page(array: np.ndarray, index: int, fmt: str, dpi: int | None = None) -> DecodedPage:
    """Wrap a (H, W) uint8 array as a DecodedPage with its PNG encoding."""
    buffer = io.BytesIO()
    params = {"dpi": (dpi, dpi)} if dpi else {}
    Image.fromarray(array, mode="L").save(buffer, format="PNG", **params)
    height, width = array.shape
    return DecodedPage(array, buffer.getvalue(), width, height, index, fmt, None)


def _orientation(image: Image.Image) -> int:
    """EXIF/TIFF orientation (1-8) of the current frame; 1 when absent, invalid or unreadable.

    Broken EXIF is common in phone photos and is not a reason to refuse the pixels.
    """
    try:
        value = int(image.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - unreadable EXIF: show the pixels as stored
        return 1
    return value if 1 <= value <= 8 else 1


def _to_gray(image: Image.Image, fmt: str, where: str) -> Image.Image:
    """Convert a loaded Pillow image of any mode to an "L" image (see decode_upload)."""
    mode = image.mode
    if mode == "L" and "transparency" not in image.info:
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return Image.fromarray(_integer_to_gray(image, fmt), mode="L")
    if mode == "F":
        return Image.fromarray(_float_to_gray(np.asarray(image, dtype=np.float64)), mode="L")
    if mode == "CMYK":
        if fmt == "jpeg" and "adobe" not in image.info:
            # Pillow always reads JPEG CMYK as Adobe-inverted (JpegImagePlugin: "assume adobe
            # conventions"); without the APP14 marker the samples are plain CMYK, so undo it.
            image = Image.eval(image, lambda value: 255 - value)
        return image.convert("RGB").convert("L")
    if mode in ("LAB",):
        return image.getchannel(0)
    if mode == "1" or (mode in ("P", "L", "RGB") and not image.has_transparency_data):
        return image.convert("L")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    try:
        return image.convert("RGB").convert("L")
    except ValueError as exc:
        raise IngestError(
            f"{where}: unsupported pixel mode {mode} in {fmt.upper()}", 415, "unsupported_variant"
        ) from exc


def _integer_to_gray(image: Image.Image, fmt: str) -> np.ndarray:
    """Scale 12/16/32-bit integer samples to 0-255 by their declared bit depth.

    The depth comes from the TIFF tags BitsPerSample/SampleFormat when present (a 12-bit TIFF
    holds 0..4095 in Pillow's I;16 mode); otherwise 16 bits for I;16 modes and for "I" images
    whose samples fit 0..65535 (16-bit PNG), else 32-bit signed. Signed samples map their full
    range [-2**(b-1), 2**(b-1) - 1] onto 0..255.
    """
    samples = np.asarray(image).astype(np.float64)
    bits, signed = None, False
    tags = getattr(image, "tag_v2", None) if fmt == "tiff" else None
    if tags is not None:
        declared = tags.get(_TIFF_BITS_PER_SAMPLE)
        sample_format = tags.get(_TIFF_SAMPLE_FORMAT)
        if isinstance(declared, tuple):
            declared = declared[0] if declared else None
        if isinstance(sample_format, tuple):
            sample_format = sample_format[0] if sample_format else None
        if isinstance(declared, int) and 1 <= declared <= 32:
            bits = declared
        signed = sample_format == 2
    if bits is None:
        if image.mode.startswith("I;16"):
            bits = 16
        elif samples.size and samples.min() >= 0 and samples.max() <= 65535:
            bits = 16
        else:
            bits, signed = 32, True
    low = -(2.0 ** (bits - 1)) if signed else 0.0
    high = low + 2.0**bits - 1
    scaled = (np.clip(samples, low, high) - low) * (255.0 / (high - low))
    return np.rint(scaled).astype(np.uint8)


def _float_to_gray(samples: np.ndarray) -> np.ndarray:
    """Scale float samples to 0-255 by the range they occupy.

    Float TIFFs carry no declared range, so: values within [0, 1] are taken as fractions
    (x 255); within [0, 255] as 8-bit; within [0, 65535] as 16-bit (/ 257); otherwise the
    finite minimum..maximum is stretched to 0..255. NaN and +inf become 255 (paper), -inf 0.
    """
    finite = np.isfinite(samples)
    if not finite.any():
        return np.full(samples.shape, 255, dtype=np.uint8)
    values = samples[finite]
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
        scaled = samples * 255.0
    elif low >= 0.0 and high <= 255.0:
        scaled = samples
    elif low >= 0.0 and high <= 65535.0:
        scaled = samples / 257.0
    elif high > low:
        scaled = (samples - low) * (255.0 / (high - low))
    else:
        scaled = np.full(samples.shape, 255.0)
    scaled = np.where(np.isnan(samples) | np.isposinf(samples), 255.0, scaled)
    scaled = np.where(np.isneginf(samples), 0.0, scaled)
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# PDF


def _decode_pdf(data: bytes, name: str, limits: _Limits, dpi: int) -> list[DecodedPage]:
    """Render every page of a PDF with PDFium at ``dpi``, in grayscale on white.

    The pixel size of each page, ceil(points * dpi / 72) per side, is checked against the limits
    before rendering. A page PDFium cannot load, or one too large or too small, becomes an error
    page; a file PDFium cannot open at all is 400 (password-protected: code ``encrypted``).
    Page content PDFium can parse but not fully draw (a corrupt content stream or image) renders
    as far as PDFium gets, usually blank: PDFium, like every PDF viewer, repairs silently.
    """
    scale = dpi / 72.0
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if getattr(exc, "err_code", None) == pdfium.raw.FPDF_ERR_PASSWORD:
                raise IngestError(
                    f"{name}: the PDF is password-protected; remove the password and upload again",
                    400,
                    "encrypted",
                ) from exc
            raise IngestError(
                f"{name}: truncated or corrupt PDF ({exc})", 400, "corrupt"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - any other failure to open is a corrupt file
            raise IngestError(f"{name}: truncated or corrupt PDF ({exc})", 400, "corrupt") from exc
        try:
            count = len(document)
            if count == 0:
                raise IngestError(f"{name}: the PDF has no pages", 400, "corrupt")
            if count > limits.max_frames:
                raise IngestError(
                    f"{name}: {count} pages, more than the limit of {limits.max_frames} pages in "
                    "one file; split it and upload the parts",
                    413,
                    "too_many_pages",
                )
            multi = count > 1
            pages = []
            for index in range(count):
                where = _where(name, index, multi)
                try:
                    pages.append(_render_pdf_page(document, index, where, limits, scale, dpi))
                except IngestError as error:
                    pages.append(DecodedPage(None, b"", 0, 0, index, "pdf", error))
                except MemoryError:
                    error = IngestError(f"{where}: page too large to render", 413, "too_large")
                    pages.append(DecodedPage(None, b"", 0, 0, index, "pdf", error))
                except Exception as exc:  # noqa: BLE001 - PdfiumError and the like, per page
                    logger.info("ingest: %s failed to render: %r", where, exc)
                    error = IngestError(f"{where}: broken PDF page ({exc})", 400, "corrupt")
                    pages.append(DecodedPage(None, b"", 0, 0, index, "pdf", error))
            return pages
        finally:
            document.close()


def _render_pdf_page(
    document: pdfium.PdfDocument, index: int, where: str, limits: _Limits, scale: float, dpi: int
) -> DecodedPage:
    """Render page ``index`` (call with _PDFIUM_LOCK held); PDFium's errors propagate."""
    page = document[index]
    try:
        width_pt, height_pt = page.get_size()
        if not all(math.isfinite(v) and v > 0 for v in (width_pt, height_pt)):
            raise IngestError(
                f"{where}: the PDF page has no usable size ({width_pt} × {height_pt} points)",
                400,
                "corrupt",
            )
        width_px = math.ceil(width_pt * scale)
        height_px = math.ceil(height_pt * scale)
        _check_size(width_px, height_px, where, limits, unit=f" at {dpi} dpi", noun="page")
        bitmap = page.render(
            scale=scale, grayscale=True, fill_color=(255, 255, 255, 255), may_draw_forms=False
        )
        try:
            pil = bitmap.to_pil()
            array = np.array(pil.convert("L"), dtype=np.uint8)
        finally:
            bitmap.close()
    finally:
        page.close()
    return _page(array, index, "pdf", dpi=dpi)
