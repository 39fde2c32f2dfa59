"""Every kind of good, odd and broken upload gets its defined outcome (issues 2 and 7).

Pure tests of quire.documents.ingest (no Django): `pytest tests/ingest -p no:django`.
All files are generated in memory by bad_files.py.
"""

from __future__ import annotations

import io
import warnings

import bad_files as bf
import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageFile, ImageOps

from quire.documents.ingest import (
    DecodedPage,
    IngestError,
    decode_upload,
    describe_unaccepted,
    sniff_format,
)


def refused(data: bytes, filename: str = "scan.png", **limits) -> IngestError:
    with pytest.raises(IngestError) as caught:
        decode_upload(data, filename, **limits)
    return caught.value


def one_page(data: bytes, filename: str = "scan.png", **limits) -> DecodedPage:
    pages = decode_upload(data, filename, **limits)
    assert len(pages) == 1
    page = pages[0]
    assert page.error is None
    assert page.gray.dtype == np.uint8 and page.gray.shape == (page.height, page.width)
    return page


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Refusals: status code and message


REFUSALS = [
    # label, bytes factory, filename, limits, status, words the message must contain
    ("zero bytes", lambda: b"", "scan.png", {}, 400, ["scan.png", "empty file"]),
    ("HTML named .png", lambda: bf.HTML_PAGE, "page.png", {}, 415, ["page.png", "HTML document"]),
    ("ZIP named .tif", lambda: b"PK\x03\x04" + b"\x00" * 40, "book.tif", {}, 415, ["book.tif", "ZIP"]),
    ("text named .jpg", lambda: b"hello, this is not a picture\n", "a.jpg", {}, 415, ["a.jpg", "plain text"]),
    ("SVG named .png", lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
     "v.png", {}, 415, ["v.png", "SVG"]),
    ("PNG bomb 100000x100000 in 100 bytes", bf.png_bomb, "bomb.png", {}, 413,
     ["bomb.png", "10,000,000,000 pixels", "limit of 60,000,000 pixels"]),
    ("PNG declaring 9000x9000", lambda: bf.png_bomb(9000, 9000), "big.png", {}, 413,
     ["big.png", "9000 × 9000", "limit of 60,000,000 pixels"]),
    ("PNG over a lowered limit", lambda: bf.encode(Image.new("L", (100, 100), 255), "PNG"), "p.png",
     {"max_pixels": 9_999}, 413, ["p.png", "10,000 pixels", "limit of 9,999 pixels"]),
    ("truncated PNG", lambda: bf.encode(Image.fromarray(noise(150, 200)), "PNG")[:20_000], "t.png", {},
     400, ["t.png", "truncated or corrupt PNG"]),
    ("truncated JPEG", lambda: bf.encode(Image.fromarray(noise(150, 200)), "JPEG")[:9_000], "t.jpg", {},
     400, ["t.jpg", "truncated or corrupt JPEG"]),
    ("PNG signature then garbage", lambda: b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "g.png", {}, 400,
     ["g.png", "truncated or corrupt PNG"]),
    ("1x1 PNG", lambda: bf.encode(Image.new("L", (1, 1), 0), "PNG"), "dot.png", {}, 400,
     ["dot.png", "too small", "1 × 1", "at least 16 pixels"]),
    ("15x300 PNG (one side below 16)", lambda: bf.encode(Image.new("L", (15, 300), 0), "PNG"), "s.png",
     {}, 400, ["s.png", "too small"]),
    ("32-bit float RGB TIFF", bf.float_rgb_tiff, "f.tif", {}, 415, ["f.tif", "unsupported TIFF variant"]),
    ("TIFF with more frames than max_frames", lambda: bf.multipage_tiff(4), "m.tif", {"max_frames": 3},
     413, ["m.tif", "more than 3 pages"]),
    ("PDF with more pages than max_frames", lambda: bf.pdf_pages(4), "m.pdf", {"max_frames": 3}, 413,
     ["m.pdf", "limit of 3 pages"]),
    ("PDF page too large at 200 dpi", lambda: bf.write_pdf([{"size": (20_000, 20_000), "content": b""}]),
     "poster.pdf", {}, 413, ["poster.pdf", "at 200 dpi", "limit of 60,000,000 pixels"]),
    ("PDF page too small", lambda: bf.write_pdf([{"size": (3, 3), "content": b""}]), "tiny.pdf", {},
     400, ["tiny.pdf", "too small"]),
    ("truncated PDF", lambda: bf.pdf_pages(3)[:150], "cut.pdf", {}, 400, ["cut.pdf", "corrupt PDF"]),
    ("password-protected PDF", bf.pdf_encrypted, "secret.pdf", {}, 400, ["secret.pdf", "password"]),
    ("PDF whose every page is broken", lambda: bf.write_pdf([{"missing": True}, {"missing": True}]),
     "b.pdf", {}, 400, ["b.pdf", "no readable page", "page 1"]),
]


@pytest.mark.parametrize(
    "make,filename,limits,status,words", [case[1:] for case in REFUSALS], ids=[c[0] for c in REFUSALS]
)
def test_refusal_has_status_and_message_naming_the_file(make, filename, limits, status, words):
    error = refused(make(), filename, **limits)
    assert error.status_code == status, error.message
    for word in words:
        assert word in error.message, error.message
    assert error.message == str(error)


def test_bomb_is_refused_before_any_pixel_is_decoded(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert refused(bf.png_bomb(9000, 9000)).status_code == 413
    assert refused(bf.png_bomb()).status_code == 413


def test_pillow_own_limit_becomes_413_naming_the_limit_that_applies():
    # A configured limit above Pillow's own (2 * Image.MAX_IMAGE_PIXELS) meets Pillow's
    # DecompressionBombError inside Image.open; it must not escape as a 500.
    error = refused(bf.png_bomb(), "bomb.png", max_pixels=10**12)
    assert error.status_code == 413
    assert f"limit of {2 * Image.MAX_IMAGE_PIXELS:,} pixels" in error.message


def test_pillow_bomb_warning_raised_as_error_becomes_413():
    side = int((Image.MAX_IMAGE_PIXELS * 1.5) ** 0.5)  # above the warning, below the error
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        error = refused(bf.png_bomb(side, side), "w.png", max_pixels=10**12)
    assert error.status_code == 413 and "w.png" in error.message


def test_pdf_size_is_checked_before_rendering(monkeypatch):
    def no_rendering(*args, **kwargs):
        raise AssertionError("page was rendered")

    monkeypatch.setattr(pdfium.PdfPage, "render", no_rendering)
    error = refused(bf.write_pdf([{"size": (20_000, 20_000), "content": b""}]), "poster.pdf")
    assert error.status_code == 413


def test_sniffing_ignores_the_name():
    png = bf.encode(Image.fromarray(noise(20, 30)), "PNG")
    page = one_page(png, "really-a-png.pdf")
    assert page.source_format == "png"
    assert sniff_format(bf.HTML_PAGE) is None
    assert describe_unaccepted(bf.HTML_PAGE) == "an HTML document"
    assert {sniff_format(bf.pdf_pages(1)), sniff_format(bf.animated_gif()), sniff_format(bf.multipage_tiff(1))} == {
        "pdf", "gif", "tiff"}
    assert sniff_format(b"BMW service report 2024") is None  # "BM" alone is no BMP


# --------------------------------------------------------------------------------------------
# EXIF orientation


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(orientation, fmt):
    displayed = bf.page_with_marks(60, 40)
    params = {}
    data = bf.with_orientation(displayed, orientation, fmt)
    if fmt == "WEBP":  # lossless, so that the marks are exact
        stored = Image.fromarray(np.ascontiguousarray(bf.stored_for_orientation(displayed, orientation)))
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = bf.encode(stored, "WEBP", lossless=True, exif=exif.tobytes(), **params)
    page = one_page(data, f"o{orientation}.{fmt.lower()}")
    assert (page.width, page.height) == (60, 40)
    tolerance = 12 if fmt == "JPEG" else 1
    assert page.gray[2:6, 2:6].max() <= tolerance  # black mark top-left
    assert np.abs(page.gray[2:6, -6:-2].astype(int) - 128).max() <= tolerance  # gray mark top-right
    assert page.gray[-6:-2, 2:6].min() >= 255 - tolerance  # white bottom-left
    # Reference: Pillow's own ImageOps.exif_transpose on the same file.
    reference = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("L"))
    assert np.abs(page.gray.astype(int) - reference).max() <= 1


def test_broken_exif_does_not_refuse_the_pixels():
    image = Image.fromarray(bf.page_with_marks())
    data = bf.encode(image, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    page = one_page(data)
    assert (page.width, page.height) == (60, 40)


# --------------------------------------------------------------------------------------------
# Conversions to 8-bit grayscale


def test_alpha_png_is_flattened_onto_white():
    data, expected = bf.alpha_png()
    np.testing.assert_array_equal(one_page(data).gray, expected)


def test_gray_alpha_png_is_flattened_onto_white():
    la = np.zeros((20, 30, 2), np.uint8)  # black, fully transparent
    la[5:10, 5:10] = (0, 255)
    page = one_page(bf.encode(Image.fromarray(la, "LA"), "PNG"))
    assert page.gray[0, 0] == 255 and page.gray[7, 7] == 0


def test_palette_png_with_transparency():
    data, expected = bf.palette_png_with_transparency()
    np.testing.assert_array_equal(one_page(data).gray, expected)


def test_palette_png_without_transparency():
    indices = np.zeros((20, 30), np.uint8)
    indices[:, 15:] = 1
    image = Image.fromarray(indices, "P")
    image.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    gray = one_page(bf.encode(image, "PNG")).gray
    assert gray[:, :15].min() == 255 and gray[:, 15:].max() == 0


@pytest.mark.parametrize("make", [bf.cmyk_jpeg_adobe, bf.cmyk_jpeg_plain], ids=["adobe-inverted", "plain"])
def test_cmyk_jpeg_white_stays_white(make):
    data = make()
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    gray = one_page(data, "cmyk.jpg").gray
    assert gray[:6, :6].min() >= 250  # paper
    assert gray[12:20, 12:20].max() <= 10  # K = 255 block


def test_adobe_marker_is_what_pillow_writes_for_cmyk():
    # The two CMYK cases above differ exactly in the APP14 "Adobe" marker.
    assert "adobe" in Image.open(io.BytesIO(bf.cmyk_jpeg_adobe())).info
    assert "adobe" not in Image.open(io.BytesIO(bf.cmyk_jpeg_plain())).info


@pytest.mark.parametrize("writer", ["handwritten", "pillow-tiff", "pillow-png"])
def test_16bit_gray_is_scaled_by_bit_depth_not_clipped(writer):
    values = np.tile(np.array([0, 1000, 32768, 65535], np.uint16), (20, 5))
    if writer == "handwritten":
        data = bf.gray16_tiff(values)
    else:
        image = Image.frombytes("I;16", (20, 20), values.astype("<u2").tobytes())
        data = bf.encode(image, "TIFF" if writer == "pillow-tiff" else "PNG")
    gray = one_page(data).gray
    # v * 255 / 65535: 1000 -> 4 (Pillow's own I;16 -> L conversion would clip it to 255)
    np.testing.assert_array_equal(gray[0, :4], [0, 4, 128, 255])


def test_16bit_big_endian_tiff():
    values = np.tile(np.array([0, 1000, 32768, 65535], np.uint16), (20, 5))
    data = bf.encode(Image.frombytes("I;16B", (20, 20), values.astype(">u2").tobytes()), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I;16B"
    np.testing.assert_array_equal(one_page(data).gray[0, :4], [0, 4, 128, 255])


def test_12bit_gray_tiff_is_scaled_by_its_declared_12_bits():
    values = np.tile(np.array([0, 100, 2048, 4095], np.uint16), (20, 5))
    np.testing.assert_array_equal(one_page(bf.gray12_tiff(values)).gray[0, :4], [0, 6, 128, 255])


def test_32bit_integer_tiff():
    values = np.tile(np.array([0, 2**31 - 1], np.int32), (20, 10))
    gray = one_page(bf.encode(Image.fromarray(values, "I"), "TIFF")).gray
    # signed 32-bit full range onto 0..255
    np.testing.assert_array_equal(gray[0, :2], [128, 255])


def test_16bit_rgb_tiff():
    rgb = np.full((20, 32, 3), 65535, np.uint16)
    rgb[:, :8] = 0x8000
    rgb[:, 8:16] = 0
    rgb[:, 16:24, 0] = 0  # cyan: luma = (587 + 114) / 1000 * 255
    gray = one_page(bf.rgb16_tiff(rgb)).gray
    np.testing.assert_array_equal(gray[0, [0, 10, 20, 30]], [128, 0, 179, 255])


def test_float_tiff_is_scaled():
    values = np.tile(np.array([0.0, 0.5, 1.0, np.nan], np.float32), (20, 5))
    gray = one_page(bf.encode(Image.fromarray(values, "F"), "TIFF")).gray
    np.testing.assert_array_equal(gray[0, :4], [0, 128, 255, 255])


@pytest.mark.parametrize("compression", [None, "group4", "packbits"])
def test_1bit_tiff(compression):
    bits = np.zeros((30, 40), bool)
    bits[:, 20:] = True
    params = {"compression": compression} if compression else {}
    data = bf.encode(Image.fromarray(bits).convert("1"), "TIFF", **params)
    assert Image.open(io.BytesIO(data)).mode == "1"
    gray = one_page(data).gray
    assert gray[:, :20].max() == 0 and gray[:, 20:].min() == 255


def test_animated_gif_gives_its_first_frame_only():
    page = one_page(bf.animated_gif(), "anim.gif")
    assert page.source_format == "gif"
    assert page.gray[:, :20].max() == 0 and page.gray[:, 20:].min() == 255


def test_bmp_and_webp():
    picture = noise(24, 36)
    np.testing.assert_array_equal(one_page(bf.encode(Image.fromarray(picture), "BMP")).gray, picture)
    webp = bf.encode(Image.fromarray(picture).convert("RGB"), "WEBP", lossless=True)
    np.testing.assert_array_equal(one_page(webp).gray, picture)


# --------------------------------------------------------------------------------------------
# Pages: blank, noise, extreme shapes, multi-page


def test_blank_page_is_white():
    page = one_page(bf.encode(Image.new("L", (1240, 1754), 255), "PNG"), "blank.png")
    assert page.gray.min() == 255 and page.gray.shape == (1754, 1240)


def test_noise_page_is_kept_exactly_and_png_round_trips():
    picture = noise(600, 800)
    page = one_page(bf.encode(Image.fromarray(picture), "PNG"), "noise.png")
    np.testing.assert_array_equal(page.gray, picture)
    stored = Image.open(io.BytesIO(page.png_bytes))
    assert stored.format == "PNG" and stored.mode == "L"
    np.testing.assert_array_equal(np.asarray(stored), picture)


@pytest.mark.parametrize("width,height", [(20_000, 40), (40, 20_000), (16, 20_000), (20_000, 16)])
def test_very_long_and_very_narrow_images_are_accepted(width, height):
    picture = noise(height, width, seed=width)
    page = one_page(bf.encode(Image.fromarray(picture), "PNG"))
    assert (page.width, page.height) == (width, height)
    np.testing.assert_array_equal(page.gray, picture)


def test_multipage_tiff_gives_one_page_per_frame():
    pages = decode_upload(bf.multipage_tiff(3), "book.tif")
    assert [p.frame_index for p in pages] == [0, 1, 2]
    assert [int(p.gray[0, 0]) for p in pages] == [0, 10, 20]
    assert all(p.error is None and p.source_format == "tiff" for p in pages)


def test_multipage_tiff_with_one_broken_frame_keeps_the_good_ones():
    data, levels = bf.multipage_tiff_with_broken_frame()
    pages = decode_upload(data, "book.tif")
    assert [p.frame_index for p in pages] == [0, 1, 2]
    good = [pages[0], pages[2]]
    assert [int(p.gray.min()) for p in good] == [levels[0], levels[2]]
    assert all(p.error is None and p.png_bytes for p in good)
    broken = pages[1]
    assert broken.gray is None and broken.png_bytes == b""
    assert broken.error.status_code == 400
    assert "book.tif, page 2" in broken.error.message and "truncated or corrupt" in broken.error.message


def test_pdf_pages_are_rendered_at_the_given_dpi():
    pages = decode_upload(bf.pdf_pages(3), "letters.pdf")
    assert [p.frame_index for p in pages] == [0, 1, 2]
    for page in pages:
        assert page.error is None and page.source_format == "pdf"
        assert (page.width, page.height) == (400, 200)  # 144 x 72 pt at 200 dpi
        # BLACK_SQUARE spans 20..60 pt from the bottom-left: pixels 56..166 across, 33..144 down
        assert page.gray[90, 100] == 0 and page.gray[5, 5] == 255 and page.gray[190, 390] == 255
    assert Image.open(io.BytesIO(pages[0].png_bytes)).info["dpi"] == pytest.approx((200, 200), abs=0.01)
    small = decode_upload(bf.pdf_pages(1), "letters.pdf", pdf_dpi=100)[0]
    assert (small.width, small.height) == (200, 100)


def test_pdf_with_one_broken_page_keeps_the_good_ones():
    pages = decode_upload(bf.pdf_with_broken_page(), "scan.pdf")
    assert [p.error is None for p in pages] == [True, False, True]
    assert pages[1].gray is None and pages[1].error.status_code == 400
    assert "scan.pdf, page 2" in pages[1].error.message
    assert pages[2].gray[90, 100] == 0


def test_pdf_page_with_corrupt_content_renders_what_pdfium_can():
    # Defined outcome: PDFium, like every PDF viewer, skips content it cannot parse; the page is
    # kept (here blank) rather than refused.
    pages = decode_upload(bf.pdf_with_corrupt_content(), "scan.pdf")
    assert [p.error for p in pages] == [None, None]
    assert pages[0].gray[90, 100] == 0
    assert pages[1].gray.min() == 255


def test_pdf_with_a_page_over_the_pixel_limit_keeps_the_others():
    data = bf.write_pdf([{"size": (144, 72), "content": bf.BLACK_SQUARE}, {"size": (20_000, 20_000), "content": b""}])
    pages = decode_upload(data, "mixed.pdf")
    assert pages[0].error is None
    assert pages[1].error.status_code == 413 and "mixed.pdf, page 2" in pages[1].error.message


# --------------------------------------------------------------------------------------------
# File names


@pytest.mark.parametrize(
    "filename,shown",
    [
        ("Brief an Großmutter – 1916 (Seite 2).png", "Brief an Großmutter – 1916 (Seite 2).png"),
        ("日本語の手紙.png", "日本語の手紙.png"),
        ("../../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\win.ini", "win.ini"),
        ("/var/www/media/../../x.png", "x.png"),
        ("..", "upload"),
        ("scan\x00.png\n", "scan.png"),
        ("\u202egnp.exe", "gnp.exe"),
    ],
)
def test_messages_show_only_the_safe_display_name(filename, shown):
    error = refused(b"", filename)
    assert error.message.startswith(f"{shown}: ")
    assert "/" not in error.message.split(":")[0] and "\\" not in error.message.split(":")[0]
