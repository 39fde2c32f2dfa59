"""Generators of good, odd and broken upload files, built in memory (nothing on disk).

Every function returns the file's bytes (and, where a test needs it, what a correct decoder must
produce). Pillow writes what it can; TIFF variants Pillow cannot write (12-bit, 16-bit RGB, float
RGB, broken frames) and PDFs come from the small writers below, which follow TIFF 6.0
(Adobe, 1992: header section 2, IFD section 2, baseline tags section 8) and ISO 32000-1 (PDF 1.7:
file structure 7.5, page tree 7.7.3, standard security handler 7.6.3).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------------------------
# Pillow-written files


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    """``image`` saved by Pillow in ``fmt`` ("PNG", "JPEG", "TIFF", ...)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def page_with_marks(width: int = 60, height: int = 40) -> np.ndarray:
    """A white (height, width) uint8 page with a black 8x8 block at the top-left corner and a
    mid-gray (128) 8x8 block at the top-right corner, so that every flip/rotation is told apart."""
    page = np.full((height, width), 255, np.uint8)
    page[:8, :8] = 0
    page[:8, -8:] = 128
    return page


def stored_for_orientation(displayed: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels whose EXIF ``orientation`` makes a viewer show ``displayed``.

    Built from the tag's definition (EXIF 2.32, tag 274: where the 0th row and 0th column of the
    stored image lie in the visual image), not from a transpose table:
    1 top/left, 2 top/right, 3 bottom/right, 4 bottom/left, 5 left/top, 6 right/top,
    7 right/bottom, 8 left/bottom.
    """
    d = displayed
    if orientation == 1:
        return d
    if orientation == 2:  # stored row 0 = visual top, stored col 0 = visual right
        return d[:, ::-1]
    if orientation == 3:  # row 0 = bottom, col 0 = right
        return d[::-1, ::-1]
    if orientation == 4:  # row 0 = bottom, col 0 = left
        return d[::-1, :]
    if orientation == 5:  # row 0 = visual left column, col 0 = visual top row
        return d.T
    if orientation == 6:  # row 0 = visual right column (top to bottom), col 0 = visual top row
        return d.T[::-1, :]
    if orientation == 7:  # row 0 = visual right column, col 0 = visual bottom row
        return d.T[::-1, ::-1]
    if orientation == 8:  # row 0 = visual left column, col 0 = visual bottom row
        return d.T[:, ::-1]
    raise ValueError(orientation)


def with_orientation(displayed: np.ndarray, orientation: int, fmt: str) -> bytes:
    """``displayed`` stored as ``fmt`` with EXIF/TIFF orientation ``orientation``."""
    stored = Image.fromarray(np.ascontiguousarray(stored_for_orientation(displayed, orientation)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    if fmt == "TIFF":
        return encode(stored, "TIFF", tiffinfo={0x0112: orientation})
    params = {"quality": 95} if fmt == "JPEG" else {}
    return encode(stored, fmt, exif=exif.tobytes(), **params)


def alpha_png() -> tuple[bytes, np.ndarray]:
    """RGBA PNG: fully transparent black background, opaque black block, half-transparent
    black block. Expected gray after flattening onto white: 255, 0 and 255 - round(255 * 128/255)."""
    rgba = np.zeros((32, 48, 4), np.uint8)  # transparent *black*: must become white
    rgba[4:12, 4:12] = (0, 0, 0, 255)
    rgba[20:28, 20:28] = (0, 0, 0, 128)
    expected = np.full((32, 48), 255, np.uint8)
    expected[4:12, 4:12] = 0
    expected[20:28, 20:28] = 127
    return encode(Image.fromarray(rgba, "RGBA"), "PNG"), expected


def palette_png_with_transparency() -> tuple[bytes, np.ndarray]:
    """P-mode PNG whose palette index 0 (black) is transparent (tRNS), index 1 is black, 2 gray."""
    indices = np.zeros((24, 40), np.uint8)
    indices[2:10, 2:10] = 1
    indices[12:20, 12:20] = 2
    image = Image.fromarray(indices, "P")
    image.putpalette([0, 0, 0, 0, 0, 0, 100, 100, 100] + [0] * (253 * 3))
    expected = np.full((24, 40), 255, np.uint8)
    expected[2:10, 2:10] = 0
    expected[12:20, 12:20] = 100
    return encode(image, "PNG", transparency=0), expected


def cmyk_jpeg_adobe() -> bytes:
    """A CMYK JPEG as Pillow/libjpeg write it: Adobe APP14 marker, samples stored inverted.
    White paper (C=M=Y=K=0) with a black (K=255) block at [8:24, 8:24]."""
    cmyk = np.zeros((32, 32, 4), np.uint8)
    cmyk[8:24, 8:24, 3] = 255
    return encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=95)


def strip_jpeg_segment(data: bytes, marker: int) -> bytes:
    """``data`` without its APPn segments of the given marker byte (e.g. 0xEE, Adobe APP14)."""
    out = bytearray(data[:2])
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xDA:
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if data[pos + 1] != marker:
            out += data[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out + data[pos:])


def cmyk_jpeg_plain() -> bytes:
    """A CMYK JPEG without an Adobe marker, samples stored uninverted (C=M=Y=K=0 is white).

    Pillow stores CMYK inverted (255 - v); saving 255 - v stores v, then the APP14 marker is
    cut out. Same picture as cmyk_jpeg_adobe()."""
    cmyk = np.zeros((32, 32, 4), np.uint8)
    cmyk[8:24, 8:24, 3] = 255
    data = encode(Image.fromarray(255 - cmyk, "CMYK"), "JPEG", quality=95)
    stripped = strip_jpeg_segment(data, 0xEE)
    assert b"Adobe" not in stripped[:200] and len(stripped) < len(data)
    return stripped


def animated_gif() -> bytes:
    """A 3-frame GIF: frame 0 black left half, frames 1-2 all black. Only frame 0 counts."""
    first = np.full((30, 40), 255, np.uint8)
    first[:, :20] = 0
    frames = [Image.fromarray(first), Image.new("L", (40, 30), 0), Image.new("L", (40, 30), 0)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Hand-written TIFF (little-endian, uncompressed, one strip per frame)


def tiff_frame(
    pixels: bytes,
    width: int,
    height: int,
    bits: tuple[int, ...],
    photometric: int,
    sample_format: int = 1,
    strip_offset_shift: int = 0,
) -> dict:
    """One frame for write_tiff: raw strip bytes and its tags.

    ``strip_offset_shift`` moves StripOffsets that many bytes (past the end of the file, to make
    a broken frame)."""
    return dict(
        pixels=pixels, width=width, height=height, bits=bits, photometric=photometric,
        sample_format=sample_format, shift=strip_offset_shift,
    )


def write_tiff(frames: list[dict]) -> bytes:
    """A TIFF holding ``frames`` (from tiff_frame), one IFD each, chained in order."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    previous_next_at = 4  # where to write the offset of the next IFD
    for frame in frames:
        strip_at = len(out)
        out += frame["pixels"]
        if len(out) % 2:
            out += b"\x00"
        spp = len(frame["bits"])

        def array(values, kind="H"):
            nonlocal out
            at = len(out)
            out += struct.pack("<%d%s" % (len(values), kind), *values)
            return at

        entries = []  # (tag, type, count, value-or-offset as bytes)

        def short_list(tag, values):
            if len(values) <= 2:
                entries.append((tag, 3, len(values), struct.pack("<%dH" % len(values), *values).ljust(4, b"\x00")))
            else:
                entries.append((tag, 3, len(values), struct.pack("<I", array(values))))

        entries.append((256, 4, 1, struct.pack("<I", frame["width"])))
        entries.append((257, 4, 1, struct.pack("<I", frame["height"])))
        short_list(258, list(frame["bits"]))
        entries.append((259, 3, 1, struct.pack("<HH", 1, 0)))
        entries.append((262, 3, 1, struct.pack("<HH", frame["photometric"], 0)))
        entries.append((273, 4, 1, struct.pack("<I", strip_at + frame["shift"])))
        entries.append((277, 3, 1, struct.pack("<HH", spp, 0)))
        entries.append((278, 4, 1, struct.pack("<I", frame["height"])))
        entries.append((279, 4, 1, struct.pack("<I", len(frame["pixels"]))))
        entries.append((284, 3, 1, struct.pack("<HH", 1, 0)))
        short_list(339, [frame["sample_format"]] * spp)
        if len(out) % 2:
            out += b"\x00"
        ifd_at = len(out)
        struct.pack_into("<I", out, previous_next_at, ifd_at)
        out += struct.pack("<H", len(entries))
        for tag, kind, count, value in sorted(entries):
            out += struct.pack("<HHI", tag, kind, count) + value
        previous_next_at = len(out)
        out += b"\x00\x00\x00\x00"
    return bytes(out)


def gray16_tiff(values: np.ndarray) -> bytes:
    """16-bit unsigned grayscale TIFF of (H, W) uint16 ``values``."""
    h, w = values.shape
    return write_tiff([tiff_frame(values.astype("<u2").tobytes(), w, h, (16,), 1)])


def gray12_tiff(values: np.ndarray) -> bytes:
    """12-bit grayscale TIFF (BitsPerSample 12, samples packed MSB-first, rows byte-aligned)."""
    h, w = values.shape
    rows = bytearray()
    for row in values.astype(np.uint16):
        bits = "".join(format(int(v), "012b") for v in row)
        bits += "0" * (-len(bits) % 8)
        rows += int(bits, 2).to_bytes(len(bits) // 8, "big")
    return write_tiff([tiff_frame(bytes(rows), w, h, (12,), 1)])


def rgb16_tiff(rgb: np.ndarray) -> bytes:
    """16-bit-per-sample RGB TIFF of (H, W, 3) uint16 ``rgb``."""
    h, w, _ = rgb.shape
    return write_tiff([tiff_frame(rgb.astype("<u2").tobytes(), w, h, (16, 16, 16), 2)])


def float_rgb_tiff(width: int = 20, height: int = 20) -> bytes:
    """32-bit float RGB TIFF (SampleFormat 3); a layout Pillow does not read."""
    rgb = np.full((height, width, 3), 0.5, "<f4")
    return write_tiff([tiff_frame(rgb.tobytes(), width, height, (32, 32, 32), 2, sample_format=3)])


def multipage_tiff_with_broken_frame(width: int = 40, height: int = 30) -> tuple[bytes, list[int]]:
    """3-frame 8-bit gray TIFF; frame 1's StripOffsets points past the end of the file.

    Returns the bytes and the constant gray level of each frame (frames are flat)."""
    levels = [10, 120, 240]
    frames = [
        tiff_frame(bytes([level]) * (width * height), width, height, (8,), 1,
                   strip_offset_shift=(10_000_000 if i == 1 else 0))
        for i, level in enumerate(levels)
    ]
    return write_tiff(frames), levels


def multipage_tiff(count: int, width: int = 32, height: int = 24) -> bytes:
    """``count``-frame 8-bit gray TIFF written by Pillow; frame i is flat gray 10 * i."""
    frames = [Image.new("L", (width, height), 10 * i) for i in range(count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# PNG crafted at the chunk level


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its CRC (ISO/IEC 15948 5.3)."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG under 100 bytes whose IHDR declares ``width`` x ``height`` 8-bit gray
    pixels (10**10 by default) with a tiny IDAT: decoding it would need 10 GB."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------
# PDF


BLACK_SQUARE = b"0 g 20 20 40 40 re f"  # a 40x40 pt black square at (20, 20) pt from bottom-left


def write_pdf(pages: list[dict], trailer_extra: bytes = b"") -> bytes:
    """A PDF 1.7 file with a classic xref table.

    Each page is a dict: ``size`` (width, height) in points, ``content`` (content stream bytes,
    or None for no /Contents), ``missing`` (True: the page tree points at an object that does
    not exist, as when a page's object was lost), ``extra`` (bytes added to the page dict).
    """
    objects: list[bytes | None] = [None, None]  # 1: catalog, 2: page tree

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    kids = []
    for page in pages:
        if page.get("missing"):
            kids.append(9999)
            continue
        body = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s]" % (
            str(page["size"][0]).encode(), str(page["size"][1]).encode())
        if page.get("content") is not None:
            content = page["content"]
            stream = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
            body += b" /Contents %d 0 R" % stream
        body += page.get("extra", b"") + b" >>"
        kids.append(add(body))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % kid for kid in kids), len(kids))
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, trailer_extra, xref))
    return out.getvalue()


def pdf_pages(count: int, size: tuple[float, float] = (144, 72)) -> bytes:
    """``count`` pages of ``size`` points, each with BLACK_SQUARE."""
    return write_pdf([{"size": size, "content": BLACK_SQUARE} for _ in range(count)])


def pdf_with_broken_page() -> bytes:
    """3 pages; the page tree's second entry refers to an object that is not in the file."""
    good = {"size": (144, 72), "content": BLACK_SQUARE}
    return write_pdf([good, {"missing": True}, good])


def pdf_with_corrupt_content() -> bytes:
    """2 pages; page 2's content stream is garbage (an unterminated string, unknown operators)."""
    return write_pdf([
        {"size": (144, 72), "content": BLACK_SQUARE},
        {"size": (144, 72), "content": b"q 1 0 0 1 BT (abc Tj ET ))) << /Foo ]] Q zz"},
    ])


def pdf_encrypted() -> bytes:
    """A PDF whose standard security handler needs a user password (random /O and /U, so no
    password opens it; PDFium reports FPDF_ERR_PASSWORD)."""
    encrypt = (b" /Encrypt << /Filter /Standard /V 1 /R 2 /O <" + b"11" * 32 + b"> /U <"
               + b"22" * 32 + b"> /P -4 >> /ID [<" + b"ab" * 16 + b"><" + b"ab" * 16 + b">]")
    return write_pdf([{"size": (144, 72), "content": BLACK_SQUARE}], trailer_extra=encrypt)


# --------------------------------------------------------------------------------------------
# Not images

HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>nope</body></html>\n"
