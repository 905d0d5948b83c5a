"""Fixtures shared by the test modules."""

import pytest
from support import Committee


@pytest.fixture
def committee() -> Committee:
    return Committee()
