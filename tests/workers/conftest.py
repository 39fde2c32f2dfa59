"""Fixtures of the worker tests."""
import pytest


@pytest.fixture
def media(settings, tmp_path):
    """Default storage = a fresh folder (filesystem backend) for one test."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES,
                         "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    return tmp_path / "media"
