"""Fixtures of the registry tests: users (one staff), a tiny real recognizer artifact."""
import uuid

import pytest

from tests.platform.factories import make_user
from tests.registry.tiny import make_tiny_recognizer


@pytest.fixture
def staff(db):
    return make_user("ada", is_staff=True)


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def tiny_recognizer(tmp_path):
    """Path of a tiny untrained recognizer artifact with a unique version."""
    return make_tiny_recognizer(tmp_path / "tiny.pt", f"tiny-{uuid.uuid4().hex[:8]}")
