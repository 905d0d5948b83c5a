"""Fixtures shared by the test modules."""

import os
import tempfile

import pytest
from hypothesis import settings
from support import Committee

# Shared CI machines are noisy: judge properties, not per-example speed.
settings.register_profile("default", deadline=None)
settings.load_profile("default")

# `pot ledger verify` keeps checkpoints in the user's cache: the tests' go to one
# of their own (the CLI and the processes the tests start read this variable).
os.environ.setdefault(
    "POT_AUDIT_CACHE", tempfile.mkdtemp(prefix="pot-test-audit-cache-")
)


@pytest.fixture
def committee() -> Committee:
    return Committee()
