"""Miner keys: made once, read back; a key file replaced since is read again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pot_flower import keystore
from pot_flower.keystore import Keystore
from pot_flower.zk.signatures import SigningKey


def test_a_key_is_made_once_and_the_same_key_comes_back(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "keys")
    first = store.miner_key("7")
    assert store.miner_key("7").verify_key.raw == first.verify_key.raw
    assert Keystore(tmp_path / "keys").miner_key("7").verify_key.raw == (
        first.verify_key.raw
    )
    path = tmp_path / "keys" / "miner-7.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys" / "miner-7.pub").read_text().strip() == (
        first.verify_key.raw.hex()
    )


def test_a_key_file_replaced_since_it_was_read_is_read_again(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "keys")
    old = store.miner_key("partition-3")
    path = tmp_path / "keys" / "miner-partition-3.key"
    new = SigningKey.from_seed(b"operator's own key")
    replacement = path.with_suffix(".new")
    replacement.write_bytes(new.to_bytes())
    os.replace(replacement, path)  # another inode
    assert store.miner_key("partition-3").verify_key.raw == new.verify_key.raw
    assert new.verify_key.raw != old.verify_key.raw


def test_a_key_file_gone_bad_since_it_was_read_is_refused(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "keys")
    store.miner_key("1")
    path = tmp_path / "keys" / "miner-1.key"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="32-byte"):
        store.miner_key("1")


def test_the_keys_a_process_remembers_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keystore, "_LOADED", 5)
    store = Keystore(tmp_path / "keys")
    for i in range(20):
        store.miner_key(str(i))
    assert len(keystore._loaded) <= 5
