"""Fixtures shared by the test modules."""

import pytest
from hypothesis import settings
from support import Committee

# Shared CI machines are noisy: judge properties, not per-example speed.
settings.register_profile("default", deadline=None)
settings.load_profile("default")


@pytest.fixture
def committee() -> Committee:
    return Committee()
