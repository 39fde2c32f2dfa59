"""Every file of tests/ingest/bad_files.py through the HTTP API (POST /api/v1/pages/), not only
through the ingest function: each gets its defined outcome (202 with its pages, or a 4xx whose
message names the file and the problem), none a 500 (the test client re-raises server errors),
the good pages of a partly broken file are kept, and no user file name reaches a storage key.
"""
import re
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from quire.documents.models import Page
from quire.jobs.models import TranscriptionJob
from tests.ingest import bad_files as bf
from tests.platform.factories import client_for, make_user

URL = "/api/v1/pages/"
# Every key the platform writes: uploads and results by ids and hashes; model artifacts (written by
# the registry tests sharing the session's bucket) by kind, version and hash.
KEY = re.compile(r"(originals/\d+/[0-9a-f]{64}\.[a-z0-9]{1,8}|pages/\d+/normalised\.png|results/\d+/result\.json"
                 r"|models/(detector|recognizer)/[A-Za-z0-9._+-]+-[0-9a-f]{16}\.pt)")


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def png(array: np.ndarray) -> bytes:
    return bf.encode(Image.fromarray(array), "PNG")


def one_bit_tiff() -> bytes:
    bits = np.zeros((30, 40), bool)
    bits[:, 20:] = True
    return bf.encode(Image.fromarray(bits).convert("1"), "TIFF", compression="group4")


ACCEPTED = [
    # id, bytes factory, file name, (width, height) of each page kept, frame errors
    *[(f"exif-{o}-{fmt}", lambda o=o, fmt=fmt: bf.with_orientation(bf.page_with_marks(60, 40), o, fmt),
       f"o{o}.{fmt.lower()}", [(60, 40)], 0) for fmt in ("PNG", "JPEG", "TIFF") for o in range(1, 9)],
    ("alpha PNG", lambda: bf.alpha_png()[0], "alpha.png", [(48, 32)], 0),
    ("palette PNG with tRNS", lambda: bf.palette_png_with_transparency()[0], "pal.png", [(40, 24)], 0),
    ("CMYK JPEG Adobe-inverted", bf.cmyk_jpeg_adobe, "cmyk.jpg", [(32, 32)], 0),
    ("CMYK JPEG plain", bf.cmyk_jpeg_plain, "cmyk-plain.jpg", [(32, 32)], 0),
    ("16-bit gray TIFF", lambda: bf.gray16_tiff(np.tile(np.arange(0, 65535, 2048, dtype=np.uint16), (20, 1))),
     "g16.tif", [(32, 20)], 0),
    ("12-bit gray TIFF", lambda: bf.gray12_tiff(np.full((20, 24), 2048, np.uint16)), "g12.tif", [(24, 20)], 0),
    ("16-bit RGB TIFF", lambda: bf.rgb16_tiff(np.full((20, 32, 3), 0x8000, np.uint16)), "rgb16.tif", [(32, 20)], 0),
    ("1-bit TIFF", one_bit_tiff, "bits.tif", [(40, 30)], 0),
    ("animated GIF", bf.animated_gif, "anim.gif", [(40, 30)], 0),
    ("multi-page TIFF", lambda: bf.multipage_tiff(3), "book.tif", [(32, 24)] * 3, 0),
    ("multi-page TIFF with a broken frame", lambda: bf.multipage_tiff_with_broken_frame()[0], "broken.tif",
     [(40, 30)] * 2, 1),
    ("PDF", lambda: bf.pdf_pages(2), "letters.pdf", [(400, 200)] * 2, 0),
    ("PDF with a broken page", bf.pdf_with_broken_page, "scan.pdf", [(400, 200)] * 2, 1),
    ("PDF with corrupt content", bf.pdf_with_corrupt_content, "corrupt.pdf", [(400, 200)] * 2, 0),
    ("PDF with a page over the pixel limit",
     lambda: bf.write_pdf([{"size": (144, 72), "content": bf.BLACK_SQUARE}, {"size": (20_000, 20_000), "content": b""}]),
     "mixed.pdf", [(400, 200)], 1),
    ("blank page", lambda: png(np.full((1754, 1240), 255, np.uint8)), "blank.png", [(1240, 1754)], 0),
    ("page of noise", lambda: png(noise(600, 800)), "noise.png", [(800, 600)], 0),
    ("very long image", lambda: png(noise(40, 20_000)), "long.png", [(20_000, 40)], 0),
    ("very narrow image", lambda: png(noise(20_000, 16)), "narrow.png", [(16, 20_000)], 0),
    ("BMP", lambda: bf.encode(Image.fromarray(noise(24, 36)), "BMP"), "scan.bmp", [(36, 24)], 0),
    ("WebP", lambda: bf.encode(Image.fromarray(noise(24, 36)).convert("RGB"), "WEBP"), "scan.webp", [(36, 24)], 0),
]

REFUSED = [
    # id, bytes factory, file name, status, words the message must hold (besides the file name)
    ("zero bytes", lambda: b"", "empty.png", 400, ["empty file"]),
    ("HTML named .png", lambda: bf.HTML_PAGE, "page.png", 415, ["HTML document"]),
    ("truncated PNG", lambda: png(noise(150, 200))[:20_000], "cut.png", 400, ["truncated or corrupt PNG"]),
    ("truncated JPEG", lambda: bf.encode(Image.fromarray(noise(150, 200)), "JPEG")[:9_000], "cut.jpg", 400,
     ["truncated or corrupt JPEG"]),
    ("decompression bomb", bf.png_bomb, "bomb.png", 413, ["10,000,000,000 pixels", "limit of 60,000,000 pixels"]),
    ("1x1 image", lambda: png(np.zeros((1, 1), np.uint8)), "dot.png", 400, ["too small"]),
    ("float RGB TIFF", bf.float_rgb_tiff, "float.tif", 415, ["unsupported TIFF variant"]),
    ("encrypted PDF", bf.pdf_encrypted, "secret.pdf", 400, ["password"]),
    ("truncated PDF", lambda: bf.pdf_pages(3)[:150], "cut.pdf", 400, ["corrupt PDF"]),
    ("PDF whose every page is broken", lambda: bf.write_pdf([{"missing": True}, {"missing": True}]), "b.pdf",
     400, ["no readable page"]),
    ("PDF page too large", lambda: bf.write_pdf([{"size": (20_000, 20_000), "content": b""}]), "poster.pdf", 413,
     ["limit of 60,000,000 pixels"]),
]


@pytest.fixture
def alice(db, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    return make_user("alice")


def post(user, data: bytes, name: str):
    return client_for(user).post(URL, {"files": [SimpleUploadedFile(name, data)]}, format="multipart")


def post_raw(user, data: bytes, name: str):
    """POST a multipart body written by hand, so the file name goes to the server exactly as an
    attacker's client would send it (Django's test client refuses to build some of these names)."""
    boundary = "quire-boundary-7MA4YWxk"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{quoted}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return client_for(user).generic("POST", URL, body, content_type=f"multipart/form-data; boundary={boundary}")


def stored_keys(settings) -> list[str]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("make,name,sizes,frame_errors", [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_accepted_file_keeps_its_good_pages(alice, settings, make, name, sizes, frame_errors):
    response = post(alice, make(), name)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert len(body["jobs"]) == len(sizes) and len(body["errors"]) == frame_errors
    for error in body["errors"]:
        assert name in error["detail"] and error["filename"] == name and "page" in error["detail"]
    pages = Page.objects.filter(pk__in=[job["page"] for job in body["jobs"]]).order_by("order")
    assert [(p.width, p.height) for p in pages] == sizes
    for page in pages:
        with Image.open(page.image.path) as stored:
            assert (stored.format, stored.mode, stored.size) == ("PNG", "L", (page.width, page.height))
        assert TranscriptionJob.objects.get(page=page).state == "queued"
    assert all(KEY.fullmatch(key) for key in stored_keys(settings)), stored_keys(settings)


@pytest.mark.parametrize("make,name,status,words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_file_gets_a_4xx_naming_file_and_problem(alice, settings, make, name, status, words):
    response = post(alice, make(), name)
    assert response.status_code == status, response.json()
    detail = response.json()["detail"]
    assert name in detail and all(word in detail for word in words), detail
    assert not Page.objects.exists() and stored_keys(settings) == []


HOSTILE_NAMES = ["../../../etc/passwd", "..\\..\\Windows\\win.ini", "/var/www/media/../../x.png", "..",
                 "scan\x00.png\n", "\u202egnp.exe", "Brief an Großmutter – 1916.png", "日本語の手紙.png",
                 "a" * 500 + ".png", "%2e%2e%2fetc%2fpasswd.png", "CON.png", " .png"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_file_names_never_reach_storage_keys(alice, settings, name):
    data = png(noise(40, 60, seed=len(name)))
    response = post_raw(alice, data, name)
    if response.status_code == 400:  # Django's multipart parser drops a file with no usable name
        assert response.json()["detail"].startswith("no file") and stored_keys(settings) == []
        return
    assert response.status_code == 202, response.json()
    page = Page.objects.get(pk=response.json()["jobs"][0]["page"])
    keys = stored_keys(settings)
    assert len(keys) == 2 and all(KEY.fullmatch(key) for key in keys), keys
    shown = page.filename
    assert "/" not in shown and "\\" not in shown and "\x00" not in shown and ".." != shown
    assert len(shown) <= 255
    # An empty file under that name: the message names the file safely too.
    refused = post_raw(alice, b"", name).json()["detail"]
    assert "/" not in refused.split(":")[0] and "\\" not in refused.split(":")[0]


@pytest.mark.django_db(transaction=True)
def test_hostile_names_on_the_real_s3_server(s3_env, settings):
    """The same check on the SeaweedFS S3 server: every object key in the bucket is built from ids."""
    import boto3
    from botocore.config import Config

    user = make_user("sally")
    for i, name in enumerate(n for n in HOSTILE_NAMES[:7] if n != ".."):
        response = post_raw(user, png(noise(40, 60, seed=100 + i)), name)
        assert response.status_code == 202, response.json()
    client = boto3.client("s3", endpoint_url=s3_env["AWS_S3_ENDPOINT_URL"], region_name=s3_env["AWS_S3_REGION_NAME"],
                          aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
                          config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    keys = [obj["Key"] for obj in client.list_objects_v2(Bucket=s3_env["AWS_STORAGE_BUCKET_NAME"]).get("Contents", [])]
    mine = [k for k in keys if k.startswith(f"originals/{user.pk}/")]
    assert len(mine) == 6 and all(KEY.fullmatch(key) for key in keys), keys


def test_many_bad_files_in_one_request_keep_the_good_ones(alice):
    files = [SimpleUploadedFile(name, make()) for _, make, name, *_ in REFUSED[:6]]
    files.insert(3, SimpleUploadedFile("good.png", png(noise(40, 60, seed=7))))
    response = client_for(alice).post(URL, {"files": files}, format="multipart")
    assert response.status_code == 202
    body = response.json()
    assert len(body["jobs"]) == 1 and len(body["errors"]) == 6
    assert [e["status"] for e in body["errors"]] == [c[3] for c in REFUSED[:6]]
    assert Page.objects.get().filename == "good.png"


def test_upload_is_not_decoded_through_the_name(alice):
    """A PNG named .pdf and an HTML file named .jpg: the bytes decide, not the name."""
    assert post(alice, png(noise(40, 60, seed=9)), "really.pdf").status_code == 202
    assert post(alice, bf.HTML_PAGE, "photo.jpg").status_code == 415
