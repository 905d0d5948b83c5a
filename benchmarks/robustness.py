"""Robustness under attack: PoT's rules against Flower's on identical seeds.

An in-process federation (Fashion-MNIST from the Debian package, an MLP, miners on
Dirichlet partitions): honest miners train with PyTorch, Byzantine miners run an
attack of :mod:`pot_flower.attacks`, and each rule under test combines the round:

- ``pot:<preset-or-rule>``: the committee's round execution itself
  (:func:`~pot_flower.protocol.execution.execute_round` on signed submissions, as
  every validator runs it), so verdicts and rewards come out too;
- ``flwr:<Strategy>``: Flower's own ``aggregate_train`` on the same replies.

Every rule sees the same partitions, initial model, attackers and per-round
training seeds. Prints one line per cell and a worst-case table; writes JSON (and a
PNG of accuracy per round with ``--plot``).

    python benchmarks/robustness.py --rounds 15 --fractions 0.1,0.2,0.3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch
from torch import nn

from pot_flower.attacks import SUITE, Attack, Context
from pot_flower.protocol.batch import RoundBatch, SubmissionRef
from pot_flower.protocol.chain import ChainState, genesis
from pot_flower.protocol.execution import execute_round
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.params import Params
from pot_flower.protocol.privacy.accountant import spent
from pot_flower.protocol.privacy.config import PrivacyConfig
from pot_flower.protocol.robust import PRESETS, robust_settings
from pot_flower.protocol.robust.config import SERVER_MOMENTUM_PPM
from pot_flower.protocol.scores import ScoreVector
from pot_flower.protocol.submission import build_submission
from pot_flower.validator.scoring import score_batch
from pot_flower.zk.signatures import SigningKey

# The quickstart's offline data pipeline (Debian package dataset-fashion-mnist).
sys.path.insert(
    0, str(Path(__file__).resolve().parents[1] / "examples/quickstart-pytorch")
)
from progress import steps
from quickstart_pytorch.task import load_split, to_tensors

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
NORM_BOUND = 100.0
NOISE_KEY = hashlib.sha256(b"benchmark noise key").digest()  # DP chains only
Arrays = dict[str, np.ndarray]


# ------------------------------------------------------------------------ data
def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The quickstart's Fashion-MNIST split, flattened for the MLP."""
    images, labels = load_split(split, str(DATA_DIR))
    x, y = to_tensors(images, labels)
    return x.flatten(1), y


def dirichlet(
    labels: np.ndarray, parts: int, alpha: float, seed: int
) -> list[np.ndarray]:
    """Indices per partition: each class split by a Dirichlet(alpha) draw."""
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in range(parts)]
    for c in range(int(labels.max()) + 1):
        idx = rng.permutation(np.flatnonzero(labels == c))
        shares = rng.dirichlet([alpha] * parts)
        cuts = (np.cumsum(shares) * len(idx)).astype(int)[:-1]
        for p, chunk in enumerate(np.split(idx, cuts)):
            out[p].extend(chunk.tolist())
    return [np.array(sorted(p), dtype=np.int64) for p in out]


# ----------------------------------------------------------------------- model
def make_model(seed: int, hidden: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def get_arrays(model: nn.Module) -> Arrays:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def set_arrays(model: nn.Module, arrays: Arrays) -> None:
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})


def flat(arrays: Arrays) -> np.ndarray:
    return np.concatenate([a.ravel().astype(np.float64) for a in arrays.values()])


def unflat(vector: np.ndarray, like: Arrays) -> Arrays:
    out, at = {}, 0
    for k, a in like.items():
        out[k] = vector[at : at + a.size].reshape(a.shape).astype(a.dtype)
        at += a.size
    return out


@dataclass
class Task:
    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    parts: list[np.ndarray]
    hidden: int
    epochs: int
    lr: float
    batch: int

    def train(self, model: nn.Module, part: int, seed: int, flip: bool) -> None:
        idx = self.parts[part]
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.SGD(model.parameters(), lr=self.lr)
        model.train()
        for _ in range(self.epochs):
            order = idx[torch.randperm(len(idx), generator=g).numpy()]
            for start in range(0, len(order), self.batch):
                b = order[start : start + self.batch]
                y = self.y[b]
                if flip:
                    y = 9 - y
                opt.zero_grad()
                nn.functional.cross_entropy(model(self.x[b]), y).backward()
                opt.step()

    def train_on(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.SGD(model.parameters(), lr=self.lr)
        model.train()
        order = torch.randperm(len(y), generator=g)
        for start in range(0, len(order), self.batch):
            b = order[start : start + self.batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()

    def accuracy(self, model: nn.Module) -> float:
        model.eval()
        with torch.no_grad():
            return float((model(self.x_test).argmax(1) == self.y_test).float().mean())


# ----------------------------------------------------------------------- rules
@dataclass
class Reply:
    miner: int
    returned: Arrays
    examples: int


class Rule:
    name: str
    byzantine_share: float | None = None

    def start(self, model: Arrays, miners: int, f: int) -> None: ...
    def round(
        self, model: Arrays, replies: list[Reply], byzantine: set[int]
    ) -> Arrays: ...


class PoTRule(Rule):
    """The committee's round execution on signed submissions."""

    def __init__(
        self,
        name: str,
        settings: dict[str, object],
        fraction: float,
        scorer: Callable[[Arrays, Arrays], float] | None = None,
        privacy: PrivacyConfig | None = None,
    ) -> None:
        self.name = f"pot:{name}"
        self.settings = settings
        self.privacy = privacy or PrivacyConfig()
        self.committee_seconds: list[float] = []
        self.fraction = fraction
        self.scorer = scorer
        self.paid = {"byzantine": 0, "honest": 0}
        self.by_miner: dict[int, int] = {}
        self.rejected: dict[str, int] = {}

    def start(self, model: Arrays, miners: int, f: int) -> None:
        settings = dict(self.settings)
        if "byzantine_fraction" not in settings and settings.get("preset") not in (
            "off",
            "default",
        ):
            settings.setdefault("byzantine_fraction", self.fraction)
        if settings.pop("scored", False):
            settings["scored"] = True
        robust = robust_settings(**settings)  # type: ignore[arg-type]
        self.validator = SigningKey.from_seed(b"v")
        params = Params(
            run=1,
            validators=(self.validator.verify_key.raw,),
            quorum=1,
            norm_bound_units=max_norm_units(NORM_BOUND),
            robust=robust,
            privacy=self.privacy,
        )
        _, self.state = genesis(params, model)
        self.keys = [SigningKey.from_seed(b"miner-%d" % i) for i in range(miners)]

    def round(self, model: Arrays, replies: list[Reply], byzantine: set[int]) -> Arrays:
        state: ChainState = self.state
        refs, payloads = [], {}
        for r in replies:
            sub = build_submission(
                self.keys[r.miner],
                run=1,
                round_=state.height + 1,
                node=r.miner,
                nonce=state.nonce(),
                received=state.model,
                returned=r.returned,
                num_examples=r.examples,
            )
            digest = hashlib.sha256(sub.payload).digest()
            payloads[digest] = sub.payload
            refs.append(
                SubmissionRef(r.miner, sub.envelope_bytes, sub.signature, digest)
            )
        claim = spent(self.privacy, state.height + 1) if self.privacy.on else None
        batch = RoundBatch(1, state.height + 1, tuple(refs), privacy=claim)
        if state.params.robust.scored:
            assert self.scorer is not None
            scores = score_batch(self.scorer, state.model, batch.submissions, payloads)
            vector = ScoreVector.signed(
                self.validator,
                0,
                run=1,
                round_=batch.round,
                digest=batch.scores_digest(),
                scores=scores,
            )
            batch = replace(batch, scores=(vector,))
        started = time.perf_counter()
        outcome = execute_round(state, batch.to_bytes(), payloads, noise_key=NOISE_KEY)
        self.committee_seconds.append(time.perf_counter() - started)
        for v in outcome.verdicts:
            side = "byzantine" if v.node in byzantine else "honest"
            self.paid[side] += v.reward
            self.by_miner[v.node] = self.by_miner.get(v.node, 0) + v.reward
            if v.reason is not None:
                key = f"{side}:{v.reason.value}"
                self.rejected[key] = self.rejected.get(key, 0) + 1
        self.state = outcome.state
        total = sum(self.paid.values())
        self.byzantine_share = self.paid["byzantine"] / total if total else 0.0
        return dict(outcome.state.model)


class FlowerRule(Rule):
    """A Flower strategy's ``aggregate_train`` on the same replies."""

    def __init__(self, name: str, factory: Callable[[int, int], object]) -> None:
        self.name = f"flwr:{name}"
        self.factory = factory

    def start(self, model: Arrays, miners: int, f: int) -> None:
        from flwr.supercore.task_identity import TaskIdentity

        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
        self.strategy = self.factory(miners, f)

    def round(self, model: Arrays, replies: list[Reply], byzantine: set[int]) -> Arrays:
        from flwr.app import (
            Array,
            ArrayRecord,
            ConfigRecord,
            Message,
            MessageType,
            MetricRecord,
            RecordDict,
        )

        messages = []
        for r in replies:
            out = Message(
                RecordDict({"config": ConfigRecord({})}),
                dst_node_id=r.miner + 1,
                message_type=MessageType.TRAIN,
            )
            content = RecordDict(
                {
                    "arrays": ArrayRecord({k: Array(v) for k, v in r.returned.items()}),
                    "metrics": MetricRecord({"num-examples": r.examples}),
                }
            )
            messages.append(Message(content, reply_to=out))
        if hasattr(self.strategy, "current_arrays"):  # FedAvgM: its base model
            base = ArrayRecord({k: Array(v) for k, v in model.items()})
            self.strategy.current_arrays = base
        arrays, _ = self.strategy.aggregate_train(1, messages)  # type: ignore[attr-defined]
        if arrays is None:  # e.g. Bulyan below n >= 4f + 3: the model stays
            return model
        return {k: arrays[k].numpy().astype(model[k].dtype) for k in model}


class HonestOnly(FlowerRule):
    """Reference: Flower's FedAvg on the honest replies alone (it knows who lies).

    No robust rule can beat what the honest miners' data reach by themselves; the
    gap to FedAvg without attack is the attackers' share of the data.
    """

    def __init__(self) -> None:
        from flwr.serverapp.strategy import FedAvg

        super().__init__("FedAvg", lambda n, f: FedAvg())
        self.name = "ref:FedAvg-honest-only"

    def round(self, model: Arrays, replies: list[Reply], byzantine: set[int]) -> Arrays:
        honest = [r for r in replies if r.miner not in byzantine]
        return super().round(model, honest, byzantine)


def flower_rules(fraction: float) -> list[Rule]:
    import logging

    from flwr.common.logger import FLOWER_LOGGER
    from flwr.serverapp.strategy import (
        Bulyan,
        FedAvg,
        FedAvgM,
        FedMedian,
        FedTrimmedAvg,
        Krum,
        MultiKrum,
    )

    FLOWER_LOGGER.setLevel(logging.WARNING)
    beta = max(fraction, 0.1)
    return [
        FlowerRule("FedAvg", lambda n, f: FedAvg()),
        # Server momentum alone, at the beta PoT's presets use: what momentum
        # buys without a robust rule.
        FlowerRule(
            "FedAvgM",
            lambda n, f: FedAvgM(server_momentum=SERVER_MOMENTUM_PPM / 1e6),
        ),
        FlowerRule("FedMedian", lambda n, f: FedMedian()),
        FlowerRule("FedTrimmedAvg", lambda n, f: FedTrimmedAvg(beta=beta)),
        FlowerRule("Krum", lambda n, f: Krum(num_malicious_nodes=f)),
        FlowerRule(
            "MultiKrum",
            lambda n, f: MultiKrum(num_malicious_nodes=f, num_nodes_to_select=n - f),
        ),
        FlowerRule("Bulyan", lambda n, f: Bulyan(num_malicious_nodes=f)),
    ]


POT_RULES: dict[str, dict[str, object]] = {
    **{preset: {"preset": preset} for preset in PRESETS},
    "median": {"aggregator": "median"},
    "trimmed-mean": {"aggregator": "trimmed-mean"},
    "multi-krum": {"aggregator": "multi-krum"},
    "geometric-median": {"aggregator": "geometric-median"},
    "centered-clipping": {"aggregator": "centered-clipping"},
    "nnm+trimmed-mean": {"aggregator": "trimmed-mean", "pre_aggregators": "nnm"},
    "recommended+scores": {"preset": "recommended", "scored": True},
}


def reference_scorer(task: Task) -> Callable[[Arrays, Arrays], float]:
    """FLTrust's trust score: cosine with an update trained on validation data.

    What a validator holding ``task``'s validation split computes; the reference
    update is trained once per base model.
    """
    cache: dict[bytes, np.ndarray] = {}
    model = make_model(0, task.hidden)

    def score(base: Arrays, returned: Arrays) -> float:
        base_flat = flat(base)
        key = hashlib.sha256(base_flat.tobytes()).digest()
        if key not in cache:
            set_arrays(model, base)
            task.train_on(model, task.x_val, task.y_val, seed=1)
            cache.clear()
            cache[key] = flat(get_arrays(model)) - base_flat
        ref = cache[key]
        u = flat(returned) - base_flat
        return float(u @ ref / (np.linalg.norm(u) * np.linalg.norm(ref) + 1e-12))

    return score


def pot_rules(names: Sequence[str], fraction: float, task: Task) -> list[Rule]:
    scorer = reference_scorer(task)
    return [PoTRule(n, POT_RULES[n], fraction, scorer) for n in names]


# ---------------------------------------------------------------------- a cell
@dataclass
class Cell:
    rule: str
    attack: str
    fraction: float
    accuracy: list[float] = field(default_factory=list)
    byzantine_share: float | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def run_cell(
    task: Task, rule: Rule, attack: Attack | None, f: int, rounds: int, seed: int
) -> Cell:
    miners = len(task.parts)
    byzantine = set(range(miners - f, miners)) if attack else set()
    model = make_model(seed, task.hidden)
    arrays = get_arrays(model)
    rule.start(arrays, miners, len(byzantine))
    cell = Cell(rule.name, attack.name if attack else "none", f / miners)
    started = time.perf_counter()
    rng = np.random.default_rng(seed + 1)
    for r in range(rounds):
        replies: list[Reply] = []
        honest_updates = []
        for m in range(miners):
            flip = bool(attack and attack.flip_labels and m in byzantine)
            if m in byzantine and not flip:
                continue
            set_arrays(model, arrays)
            task.train(model, m, seed * 1000 + r * 100 + m, flip)
            returned = get_arrays(model)
            replies.append(Reply(m, returned, len(task.parts[m])))
            if m not in byzantine:
                honest_updates.append(flat(returned) - flat(arrays))
        if attack is not None and attack.updates is not None:
            honest = np.stack(honest_updates)
            ctx = Context(rng=rng, norm_bound=NORM_BOUND)
            bad = attack.updates(honest, len(byzantine), ctx)
            base = flat(arrays)
            for m, u in zip(sorted(byzantine), bad, strict=True):
                replies.append(Reply(m, unflat(base + u, arrays), len(task.parts[m])))
        if attack is not None and attack.claimed_examples is not None:
            for reply in replies:
                if reply.miner in byzantine:
                    reply.examples = attack.claimed_examples
        replies.sort(key=lambda x: x.miner)
        arrays = rule.round(arrays, replies, byzantine)
        set_arrays(model, arrays)
        cell.accuracy.append(task.accuracy(model))
    cell.seconds = time.perf_counter() - started
    cell.byzantine_share = rule.byzantine_share
    if isinstance(rule, PoTRule):
        cell.rejected = dict(sorted(rule.rejected.items()))
    return cell


def shifted_minority(
    y: np.ndarray, miners: int, seed: int, classes: tuple[int, ...] = (8, 9)
) -> list[np.ndarray]:
    """IID partitions for all but the last miner, which holds only ``classes``."""
    rng = np.random.default_rng(seed)
    size = len(y) // miners
    rare = rng.permutation(np.flatnonzero(np.isin(y, classes)))[:size]
    rest = rng.permutation(np.setdiff1d(np.arange(len(y)), rare))
    parts = [np.sort(rest[i * size : (i + 1) * size]) for i in range(miners - 1)]
    return [*parts, np.sort(rare)]


def minority_fairness(
    task: Task, sizes: Sequence[int], rules: list[str], args
) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """ACFA's test: one honest miner from a shifted distribution, no attack.

    Its share of the miners' pool over the run, against its fair share 1/n.
    """
    rows = []
    for n in sizes:
        parts = shifted_minority(task.y.numpy(), n, args.seed)
        sub = Task(**{**task.__dict__, "parts": parts})
        for name in rules:
            rule = PoTRule(name, POT_RULES[name], 0.3, reference_scorer(sub))
            cell = run_cell(sub, rule, None, 0, args.rounds, args.seed)
            total = sum(rule.by_miner.values())
            share = rule.by_miner.get(n - 1, 0) / total if total else 0.0
            rows.append(
                {
                    "miners": n,
                    "rule": rule.name,
                    "fair-share-kept": share * n,
                    "accuracy": cell.accuracy[-1],
                }
            )
            print(
                f"minority n={n:3d} {rule.name:24s} keeps {share * n:6.1%} of its fair "
                f"share (accuracy {cell.accuracy[-1]:.4f})",
                flush=True,
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--miners", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--train-examples", type=int, default=20_000)
    ap.add_argument("--validation-examples", type=int, default=1_000)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--fractions", default="0.1,0.2,0.3")
    ap.add_argument("--attacks", default=",".join(SUITE))
    ap.add_argument("--pot", default=",".join(POT_RULES))
    ap.add_argument("--flower", default="all", help="'all', 'none' or names")
    ap.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run FedAvg on the honest replies alone (an upper bound)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--json-out", type=Path, default=Path("benchmarks/results/robustness.json")
    )
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument(
        "--minority",
        default="",
        help="miner counts for the shifted-minority fairness test (e.g. 10,20,40)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    x, y = load("train")
    x_test, y_test = load("test")
    order = np.random.default_rng(args.seed).permutation(len(y))
    pick, held = order[: args.train_examples], order[args.train_examples :]
    # Validators' validation data: held-out training examples, never a miner's.
    x_val, y_val = (
        x[held[: args.validation_examples]],
        y[held[: args.validation_examples]],
    )
    x, y = x[pick], y[pick]
    parts = dirichlet(y.numpy(), args.miners, args.alpha, args.seed)
    task = Task(
        x,
        y,
        x_test,
        y_test,
        x_val,
        y_val,
        parts,
        args.hidden,
        args.epochs,
        args.lr,
        args.batch,
    )
    attacks = [SUITE[a] for a in args.attacks.split(",") if a]
    fractions = [float(v) for v in args.fractions.split(",") if v]

    def rules_for(fraction: float) -> list[Rule]:
        rules = pot_rules([n for n in args.pot.split(",") if n], fraction, task)
        if args.flower != "none":
            wanted = None if args.flower == "all" else set(args.flower.split(","))
            rules += [
                r
                for r in flower_rules(fraction)
                if wanted is None or r.name.split(":")[1] in wanted
            ]
        if args.reference and fraction > 0:
            rules.append(HonestOnly())
        return rules

    if args.minority:
        sizes = [int(v) for v in args.minority.split(",")]
        names = [n for n in args.pot.split(",") if n]
        rows = minority_fairness(task, sizes, names, args)
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"minority": rows}, indent=1))
        return 0

    cells: list[Cell] = []

    def report(cell: Cell) -> None:
        cells.append(cell)
        share = (
            ""
            if cell.byzantine_share is None
            else f" byz-share {cell.byzantine_share:.4f}"
        )
        print(
            f"{cell.rule:24s} {cell.attack:20s} f={cell.fraction:.2f} "
            f"final {cell.accuracy[-1]:.4f} best {max(cell.accuracy):.4f}{share} "
            f"({cell.seconds:.1f} s) {cell.rejected if cell.rejected else ''}",
            flush=True,
        )

    total = len(rules_for(0.0)) + sum(
        len(attacks) * len(rules_for(fraction)) for fraction in fractions
    )
    with steps("cells", total) as advance:
        for rule in rules_for(0.0):
            report(run_cell(task, rule, None, 0, args.rounds, args.seed))
            advance()
        for fraction in fractions:
            f = round(fraction * args.miners)
            for attack in attacks:
                for rule in rules_for(fraction):
                    report(run_cell(task, rule, attack, f, args.rounds, args.seed))
                    advance()

    baseline = (
        next(c for c in cells if c.rule == "flwr:FedAvg" and c.attack == "none")
        if any(c.rule == "flwr:FedAvg" for c in cells)
        else None
    )
    summary: dict[str, dict[str, object]] = {}
    for name in dict.fromkeys(c.rule for c in cells):
        mine = [c for c in cells if c.rule == name]
        attacked = [c for c in mine if c.attack != "none"]
        worst = min(attacked, key=lambda c: c.accuracy[-1]) if attacked else None
        clean = next((c for c in mine if c.attack == "none"), None)
        shares = [c.byzantine_share for c in attacked if c.byzantine_share is not None]
        summary[name] = {
            "no-attack": clean.accuracy[-1] if clean else None,
            "worst": worst.accuracy[-1] if worst else None,
            "worst-attack": f"{worst.attack}@{worst.fraction:.2f}" if worst else None,
            "max-byzantine-share": max(shares) if shares else None,
        }
    header = f"{'rule':24s} {'no-attack':9s}  {'worst':7s} {'(attack)':22s} byz share"
    print("\n" + header)
    for name, s in summary.items():
        na = "" if s["no-attack"] is None else f"{s['no-attack']:.4f}"
        wo = "" if s["worst"] is None else f"{s['worst']:.4f}"
        sh = (
            ""
            if s["max-byzantine-share"] is None
            else f"{s['max-byzantine-share']:.4f}"
        )
        print(f"{name:24s} {na:9s}  {wo:7s} {s['worst-attack']!s:22s} {sh}")
    if baseline is not None:
        print(f"FedAvg without attack: {baseline.accuracy[-1]:.4f}")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(
        json.dumps(
            {
                "settings": {k: str(v) for k, v in vars(args).items()},
                "cells": [c.__dict__ for c in cells],
                "summary": summary,
            },
            indent=1,
        )
    )
    if args.plot is not None:
        plot(cells, args.plot)
    return 0


def plot(cells: list[Cell], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worst: dict[str, Cell] = {}
    for c in cells:
        if c.attack != "none" and (
            c.rule not in worst or c.accuracy[-1] < worst[c.rule].accuracy[-1]
        ):
            worst[c.rule] = c
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, c in worst.items():
        ax.plot(
            range(1, len(c.accuracy) + 1),
            c.accuracy,
            linestyle="--" if name.startswith("flwr:") else "-",
            label=f"{name} ({c.attack}@{c.fraction:.1f})",
        )
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (worst attack)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
