"""Builders shared by the platform and worker tests: users, in-memory page images, pages with
stored images and jobs, finished jobs with lines (through the real store path)."""
from __future__ import annotations

import io
import random

import numpy as np
from django.contrib.auth import get_user_model
from PIL import Image, ImageDraw
from rest_framework.test import APIClient

from quire.documents.models import Document, Line, Page
from quire.documents.storage import page_image_key, put_bytes
from quire.jobs.models import TranscriptionJob


def make_user(name: str, **extra):
    """A user with password 'pw-<name>-123'."""
    return get_user_model().objects.create_user(name, password=f"pw-{name}-123", **extra)


def client_for(user) -> APIClient:
    """An API client authenticated as `user` (session-less, CSRF not enforced)."""
    client = APIClient()
    client.force_authenticate(user)
    return client


def page_png(width: int = 400, height: int = 300, seed: int | None = None) -> bytes:
    """A PNG of dark pen-like strokes on light paper; each seed gives different bytes."""
    rng = random.Random(seed)
    image = Image.new("L", (width, height), 235)
    draw = ImageDraw.Draw(image)
    for row in range(3):
        y = 40 + row * (height // 4)
        x = 20
        while x < width - 40:
            step = rng.randint(8, 20)
            draw.line([(x, y + rng.randint(-6, 6)), (x + step, y + rng.randint(-6, 6))], fill=rng.randint(10, 60),
                      width=3)
            x += step
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_page(user, document: Document | None = None, width: int = 400, height: int = 300) -> tuple[Page, TranscriptionJob]:
    """A page of `user` with its normalised image in storage and a queued job."""
    document = document or Document.objects.create(owner=user, name="letters")
    page = Page.objects.create(document=document, order=document.next_page_order(), filename="scan.png",
                               source_format="png", sha256=f"{random.getrandbits(256):064x}",
                               original="originals/x.png", width=width, height=height)
    page.image.name = put_bytes(page_image_key(page.pk), page_png(width, height, seed=page.pk))
    page.save(update_fields=["image"])
    return page, TranscriptionJob.objects.create(page=page)


def add_lines(page: Page, texts: list[str]) -> list[Line]:
    """Line rows on `page`, one band of 40 pixels per text, confidences 0.9."""
    lines = []
    for index, text in enumerate(texts):
        y = 10 + index * 40
        lines.append(Line.objects.create(
            page=page, index=index, text=text, confidence=0.9, char_confidences=[0.9] * len(text),
            polygon=[[10, y], [300, y], [300, y + 30], [10, y + 30]], baseline=[[10, y + 25], [300, y + 25]],
            bbox=[10, y, 300, y + 30]))
    return lines


def gray_of(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("L"))


def finish_job(job: TranscriptionJob, texts: list[str]) -> TranscriptionJob:
    """Run the job's real start/store path with a pipeline result holding `texts` (one line each)."""
    from ml.pipeline import LineResult, PageResult
    from workers import transcription

    started = transcription.start_job(job.pk)
    lines = [LineResult(polygon=[[10, 10 + 40 * i], [300, 10 + 40 * i], [300, 40 + 40 * i], [10, 40 + 40 * i]],
                        baseline=[[10, 35 + 40 * i], [300, 35 + 40 * i]], bbox=[10, 10 + 40 * i, 300, 40 + 40 * i],
                        text=text, confidence=0.75, char_confidences=[0.75] * len(text))
             for i, text in enumerate(texts)]
    result = PageResult(width=job.page.width, height=job.page.height, lines=lines,
                        timings={"detect": 0.1, "recognize": 0.2, "total": 0.3},
                        models={"detector": "quire-detector@test", "recognizer": "quire-recognizer@test"})
    assert transcription.store_result(started, result)
    job.refresh_from_db()
    return job
