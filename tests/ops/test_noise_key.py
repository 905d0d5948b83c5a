"""The committee's DP noise key: written by init, named by hash, checked at start."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from pot_flower.ops.committee_file import (
    NOISE_KEY_FILE,
    CommitteeFileError,
    load_committee,
    read_noise_key,
)
from pot_flower.ops.daemon import EXIT_CONFIG, run_validator
from pot_flower.ops.local import prepare


def test_init_writes_a_private_noise_key_the_committee_file_names(
    tmp_path: Path,
) -> None:
    path = prepare(4, tmp_path)
    key_file = tmp_path / NOISE_KEY_FILE
    key = key_file.read_bytes()
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    committee = load_committee(path)
    assert committee.noise_key_digest == hashlib.sha256(key).digest()
    assert read_noise_key(committee.noise_key_path, committee.noise_key_digest) == key
    # A second committee gets another key.
    other = load_committee(prepare(4, tmp_path / "other"))
    assert other.noise_key_digest != committee.noise_key_digest


def test_a_key_that_is_not_the_named_one_is_refused(tmp_path: Path) -> None:
    committee = load_committee(prepare(4, tmp_path))
    assert committee.noise_key_digest is not None
    (tmp_path / NOISE_KEY_FILE).write_bytes(bytes(32))
    with pytest.raises(CommitteeFileError, match="not the noise key"):
        read_noise_key(committee.noise_key_path, committee.noise_key_digest)
    (tmp_path / NOISE_KEY_FILE).unlink()
    with pytest.raises(CommitteeFileError, match="cannot be read"):
        read_noise_key(committee.noise_key_path, committee.noise_key_digest)


@pytest.mark.parametrize(
    "table",
    ['noise-key-sha256 = "abcd"', 'noise-key-sha256 = "zz"', 'other = "x"'],
)
def test_a_malformed_privacy_table_is_a_clear_error(tmp_path: Path, table: str) -> None:
    path = prepare(4, tmp_path)
    text = path.read_text()
    start = text.index("[privacy]")
    end = text.index("\n", text.index("noise-key-sha256", start))
    path.write_text(text[:start] + "[privacy]\n" + table + text[end:])
    with pytest.raises(CommitteeFileError, match=r"\[privacy\]"):
        load_committee(path)


def test_a_validator_without_its_noise_key_refuses_to_start(tmp_path: Path) -> None:
    path = prepare(4, tmp_path)
    (tmp_path / NOISE_KEY_FILE).write_bytes(os.urandom(32))  # the wrong one
    status = run_validator(path, 0, tmp_path / "validator-0.key", tmp_path / "v0")
    assert status == EXIT_CONFIG
