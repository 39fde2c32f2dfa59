"""Fixtures of the platform tests: filesystem storage in a temporary folder, two users."""
import pytest

from tests.platform.factories import make_user


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Default storage = a fresh folder (filesystem backend) for each test."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES,
                         "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    return tmp_path / "media"


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")
