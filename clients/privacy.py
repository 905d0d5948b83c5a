"""Local DP on miners: Opacus DP-SGD, accounted across a federation's rounds.

Central DP (``pot-dp = "central"``) protects the model's users; it does not protect
a miner against the committee, whose validators see every update. Local DP does:
each miner trains with DP-SGD, so what it sends is already private.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flwr.app import ConfigRecord, Context

LOCAL_DP_STATE = "pot.local-dp"
"""Where a miner's accountant history lives in its Flower ``context.state``."""
EPSILON_METRIC = "dp-epsilon"
DELTA_METRIC = "dp-delta"
"""Reply metrics ``pot_mod`` signs into the envelope as the miner's local DP."""


@dataclass
class DpSgd:
    """DP-SGD for one miner (Opacus's RDP accountant), to a budget over all rounds.

    Solves once for the noise multiplier that spends ``target_epsilon`` over
    ``rounds`` rounds of ``epochs`` local epochs (Poisson-sampled batches, as the
    accountant assumes), and keeps the accountant's history in the node's
    ``context.state`` so that every round adds to the same budget, although Flower
    builds a new ClientApp each round; a round past the planned ones is refused
    (``context.state`` lives as long as the SuperNode: a restarted node would start
    a new budget, so persist it where nodes restart). Put its :meth:`metrics` in
    the reply's MetricRecord: ``pot_mod`` signs them into the envelope and the
    block records them as the miner's self-reported local DP.

    Example:
    -------
    ::

        dp = DpSgd(target_epsilon=2.0, target_delta=1e-5, rounds=10,
                   max_grad_norm=1.0)
        model_dp, optimizer, loader = dp.make_private(model, optimizer, loader,
                                                      context)
        train(model_dp, optimizer, loader)     # the Opacus-wrapped objects
        metrics = {"num-examples": n, **dp.metrics(context)}
        arrays = ArrayRecord(model.state_dict())   # your model: same weights

    """

    target_epsilon: float
    target_delta: float
    rounds: int
    max_grad_norm: float = 1.0
    epochs: int = 1

    def __post_init__(self) -> None:
        if not (self.target_epsilon > 0 and 0 < self.target_delta < 1):
            raise ValueError("DP-SGD needs epsilon > 0 and delta in (0, 1)")
        if self.rounds < 1 or self.epochs < 1 or not self.max_grad_norm > 0:
            raise ValueError("rounds, epochs and max_grad_norm must be positive")
        self._engine: Any = None

    def noise_multiplier(self, sample_rate: float, steps_per_epoch: int) -> float:
        """Sigma that spends the target over every round's steps."""
        steps = self.rounds * self.epochs * steps_per_epoch
        return _solve_sigma(self.target_epsilon, self.target_delta, sample_rate, steps)

    def make_private(
        self, model: Any, optimizer: Any, data_loader: Any, context: Context
    ) -> tuple[Any, Any, Any]:
        """Opacus's private model, optimizer and loader for this round."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # secure_mode and hook notices
            from opacus import PrivacyEngine

            engine = PrivacyEngine(accountant="rdp")
            history = _history(context)
            engine.accountant.history = history
            planned = self.rounds * self.epochs * len(data_loader)
            if sum(h[2] for h in history) >= planned:
                raise RuntimeError(
                    f"local DP budget spent: {self.rounds} rounds planned and run "
                    f"(epsilon {self.spent(context):.3f} of {self.target_epsilon})"
                )
            sample_rate = 1 / len(data_loader)
            sigma = self.noise_multiplier(sample_rate, len(data_loader))
            out = engine.make_private(
                module=model,
                optimizer=optimizer,
                data_loader=data_loader,
                noise_multiplier=sigma,
                max_grad_norm=self.max_grad_norm,
                poisson_sampling=True,
                noise_generator=_fresh_generator(),
            )
        self._engine = engine
        return out[0], out[1], out[-1]

    def metrics(self, context: Context) -> dict[str, float]:
        """Store this round's steps in ``context`` and report epsilon so far."""
        if self._engine is None:
            raise RuntimeError("call make_private (and train) first")
        history = self._engine.accountant.history
        context.state[LOCAL_DP_STATE] = ConfigRecord(
            {
                "sigma": [float(h[0]) for h in history],
                "sample-rate": [float(h[1]) for h in history],
                "steps": [int(h[2]) for h in history],
            }
        )
        return {
            EPSILON_METRIC: self.spent(context),
            DELTA_METRIC: float(self.target_delta),
        }

    def spent(self, context: Context) -> float:
        """Epsilon (at ``target_delta``) of every round recorded in ``context``."""
        from opacus.accountants import RDPAccountant

        accountant = RDPAccountant()
        accountant.history = _history(context)
        if not accountant.history:
            return 0.0
        return float(accountant.get_epsilon(self.target_delta))


@lru_cache(maxsize=64)
def _solve_sigma(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """Opacus's search for the noise multiplier (once per setting and process)."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(
        get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant="rdp",
        )
    )


def _fresh_generator() -> Any:
    """A noise generator seeded from the OS, not from torch's global seed.

    Training code often seeds torch identically on every node for
    reproducibility; Opacus would then add the *same* noise on every miner (seen:
    the committee set such updates aside as near copies), which is neither
    private nor independent. Opacus's secure mode needs torchcsprng, which does
    not install beside this torch.
    """
    import torch

    return torch.Generator().manual_seed(secrets.randbits(63))


def _history(context: Context) -> list[tuple[float, float, int]]:
    record = context.state.config_records.get(LOCAL_DP_STATE)
    if record is None:
        return []
    sigmas, rates, steps = record["sigma"], record["sample-rate"], record["steps"]
    assert isinstance(sigmas, list) and isinstance(rates, list)
    assert isinstance(steps, list)
    return [
        (float(s), float(q), int(n))  # type: ignore[arg-type, call-overload]
        for s, q, n in zip(sigmas, rates, steps, strict=True)
    ]
