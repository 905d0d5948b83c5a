"""The demo attack mod: Byzantine nodes sign malicious updates and earn nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from flower_support import LocalGrid, Net, make_plain_app, synthetic_partition
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord
from torch import nn

from pot_flower.audit import audit_ledger
from pot_flower.clients import demo_attack_mod, pot_mod
from pot_flower.protocol.reasons import Reason
from pot_flower.strategies import PoTStrategy

NODES = 6
ATTACKERS = {1000, 1007}  # partition ids 0 and 1


def run(tmp_path: Path, attack: str, **kwargs: object) -> PoTStrategy:
    grid = LocalGrid(
        make_plain_app(mods=[pot_mod, demo_attack_mod]),
        NODES,
        run_config={
            "pot-keystore": str(tmp_path / "keys"),
            "pot-demo-attack": attack,
            "pot-demo-byzantine": 2,
        },
    )
    strategy = PoTStrategy(
        ledger_dir=tmp_path / "ledger",
        min_available_nodes=NODES,
        fraction_evaluate=0.0,
        **kwargs,  # type: ignore[arg-type]
    )
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(Net().state_dict()),
        num_rounds=2,
        train_config=ConfigRecord({"lr": 0.1}),
        evaluate_fn=lambda r, arrays: MetricRecord({"round": r}),
    )
    return strategy


@pytest.mark.parametrize("attack", ["inflate", "free-rider"])
def test_demo_attackers_earn_nothing_under_the_recommended_preset(
    tmp_path: Path, attack: str
) -> None:
    strategy = run(tmp_path, attack, robust="recommended")
    for report in strategy.history:
        paid = {s.node: s.reward for s in report.submissions}
        assert all(paid[n] == 0 for n in ATTACKERS), (attack, paid)
        assert sum(paid[n] for n in paid if n not in ATTACKERS) > 0
        claims = {s.node: s.examples for s in report.submissions}
        if attack == "inflate":
            assert all(claims[n] == 1 << 20 for n in ATTACKERS)


def test_an_unknown_demo_attack_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="pot-demo-attack"):
        run(tmp_path, "meteor")


_REFERENCE: dict[bytes, np.ndarray] = {}


def reference_cosine(
    base: dict[str, np.ndarray], returned: dict[str, np.ndarray]
) -> float:
    """FLTrust-style score: agreement with an update trained on validation data."""
    flat_base = np.concatenate([a.ravel() for a in base.values()]).astype(np.float64)
    key = hashlib.sha256(flat_base.tobytes()).digest()
    if key not in _REFERENCE:
        model = Net()
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in base.items()})
        x, y = synthetic_partition(999)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i in range(0, len(x), 16):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 16]), y[i : i + 16]).backward()
            opt.step()
        new = np.concatenate(
            [v.detach().numpy().ravel() for v in model.state_dict().values()]
        )
        _REFERENCE[key] = new.astype(np.float64) - flat_base
    ref = _REFERENCE[key]
    update = np.concatenate([a.ravel() for a in returned.values()]) - flat_base
    return float(update @ ref / (np.linalg.norm(update) * np.linalg.norm(ref) + 1e-12))


def test_scored_committee_excludes_attackers_by_their_agreed_score(
    tmp_path: Path,
) -> None:
    strategy = run(tmp_path, "inflate", score_fn=reference_cosine)
    for report in strategy.history:
        verdicts = report.verdicts()
        assert all(verdicts[n] is Reason.LOW_SCORE for n in ATTACKERS), verdicts
        honest = [s for s in report.submissions if s.node not in ATTACKERS]
        assert all(s.accepted and s.score is not None and s.score > 0 for s in honest)
        assert sum(s.reward for s in honest) > 0
    for i in range(4):
        report = audit_ledger(tmp_path / "ledger" / f"validator-{i}")
        assert report.ok, report.problem
