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


def scoring_file(tmp_path: Path, table: str) -> Path:
    path = committee_file(tmp_path, "")
    path.write_text(path.read_text() + f"\n[scoring]\n{table}\n")
    return path


def test_a_scoring_table_names_the_score_function(tmp_path: Path) -> None:
    path = scoring_file(tmp_path, 'score-fn = "my_app.task:score"')
    assert load_committee(path).score_fn == "my_app.task:score"
    assert load_committee(committee_file(tmp_path, "")).score_fn is None
    written = prepare(4, tmp_path / "b", score_fn='odd"name:f')
    assert load_committee(written).score_fn == 'odd"name:f'


@pytest.mark.parametrize(
    "table",
    ['score-fn = "no_colon"', 'score-fn = ":f"', "score-fn = 3", 'fn = "a:b"'],
)
def test_a_bad_scoring_table_is_refused(tmp_path: Path, table: str) -> None:
    with pytest.raises(CommitteeFileError, match=r"\[scoring\]"):
        load_committee(scoring_file(tmp_path, table))


def test_the_strategy_follows_the_committee_files_scoring(tmp_path: Path) -> None:
    from pot_flower.strategies import PoTStrategy

    plain = prepare(4, tmp_path / "plain")
    scored = prepare(4, tmp_path / "scored", score_fn="my_app.task:score")
    with pytest.raises(ValueError, match="a function object"):
        PoTStrategy(committee_file=plain, score_fn=lambda base, new: 0.0)
    # The coordinator need not have the task owner's module: validators load it.
    strategy = PoTStrategy(committee_file=plain, score_fn="my_app.task:score")
    with pytest.raises(ValueError, match="score with None"):
        strategy._remote(1, {})
    strategy = PoTStrategy(committee_file=scored, score_fn="other:score")
    with pytest.raises(ValueError, match=r"score with 'my_app\.task:score'"):
        strategy._remote(1, {})


def bls_file(tmp_path: Path, swap: dict[str, str] | None = None, only: int = 4) -> Path:
    """A committee file whose first ``only`` validators list BLS keys."""
    from pot_flower.ops.committee_file import render_committee
    from pot_flower.protocol.certificate import BlsKey

    keys = [SigningKey.from_seed(b"v%d" % i) for i in range(4)]
    text = render_committee(
        [(f"127.0.0.1:{7100 + i}", k.verify_key) for i, k in enumerate(keys)],
        {},
        tls=False,
        bls=[BlsKey.of(k) for k in keys],
    )
    lines = text.splitlines()
    seen = -1
    out = []
    for line in lines:
        seen += line.startswith("id = ")
        name = line.split(" = ")[0]
        if name.startswith("bls-") and seen >= only:
            continue
        if swap and seen == 0 and name in swap:
            line = f'{name} = "{swap[name]}"'
        out.append(line)
    path = tmp_path / "committee.toml"
    path.write_text("\n".join(out) + "\n")
    return path


def test_committee_files_list_proven_and_endorsed_bls_keys(tmp_path: Path) -> None:
    from pot_flower.protocol.certificate import BlsKey

    committee = load_committee(bls_file(tmp_path))
    assert committee.bls == tuple(
        BlsKey.of(SigningKey.from_seed(b"v%d" % i)) for i in range(4)
    )
    assert load_committee(committee_file(tmp_path, "")).bls == ()  # none: Ed25519
    # pot committee init writes them for every validator.
    assert len(load_committee(prepare(4, tmp_path / "init")).bls) == 4


def test_bad_bls_keys_are_refused_when_the_committee_is_formed(
    tmp_path: Path,
) -> None:
    from pot_flower.protocol.certificate import BlsKey

    other = BlsKey.of(SigningKey.from_seed(b"someone else"))
    cases = [
        ({}, 3, "every validator or for none"),
        ({"bls-proof": other.proof.hex()}, 4, "proof of possession"),
        ({"bls-public-key": other.key.hex()}, 4, "endorsed"),
        (
            {"bls-public-key": other.key.hex(), "bls-proof": other.proof.hex()},
            4,
            "endorsed",
        ),
        ({"bls-endorsement": "zz"}, 4, "BLS keys"),
    ]
    for i, (swap, only, message) in enumerate(cases):
        directory = tmp_path / str(i)
        directory.mkdir()
        with pytest.raises(CommitteeFileError, match=message):
            load_committee(bls_file(directory, swap, only))
