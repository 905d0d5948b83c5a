"""Committee files: what operators write is parsed strictly, with reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from pot_flower.ops.committee_file import CommitteeFileError, load_committee
from pot_flower.ops.local import prepare
from pot_flower.zk.signatures import SigningKey


def committee_file(tmp_path: Path, tuning: str) -> Path:
    keys = [SigningKey.from_seed(b"v%d" % i).verify_key for i in range(4)]
    entries = "".join(
        f'\n[[validators]]\nid = {i}\naddress = "127.0.0.1:{7100 + i}"\n'
        f'public-key = "{k.raw.hex()}"\n'
        for i, k in enumerate(keys)
    )
    path = tmp_path / "committee.toml"
    path.write_text(f"[committee]\n{tuning}\n[transport]\ntls = false\n{entries}")
    return path


def test_tuning_keys_take_their_field_types(tmp_path: Path) -> None:
    path = committee_file(tmp_path, "relay-votes = true\nrequest-timeout-ms = 700")
    config = load_committee(path).config
    assert config.relay_votes is True and config.request_timeout_ms == 700


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        ("relay-votes = 1", "relay-votes must be true or false"),
        ("window = true", "window must be an integer"),
        ('window = "32"', "window must be an integer"),
        ("fast = true", "unknown [committee] keys ['fast']"),
        ("window = 3", "window must be a multiple"),
    ],
)
def test_bad_tuning_is_refused_with_the_reason(
    tmp_path: Path, tuning: str, message: str
) -> None:
    with pytest.raises(CommitteeFileError, match=message.replace("[", r"\[")):
        load_committee(committee_file(tmp_path, tuning))


def test_local_committees_relay_votes_unless_told_otherwise(tmp_path: Path) -> None:
    assert load_committee(prepare(4, tmp_path / "a")).config.relay_votes
    path = prepare(4, tmp_path / "b", tuning={"relay-votes": False})
    assert not load_committee(path).config.relay_votes
