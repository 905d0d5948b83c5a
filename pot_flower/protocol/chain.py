"""The chain state a validator holds after each block, and block 0 (genesis)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from pot_flower.encoding import Decoded, DecodeError, decode, encode
from pot_flower.protocol.block import ArraySpec, GenesisBlock
from pot_flower.protocol.certificate import GENESIS_PREVIOUS, block_hash
from pot_flower.protocol.envelope import round_nonce
from pot_flower.protocol.fixedpoint import MAX_UNITS, IntArray
from pot_flower.protocol.layout import Layout
from pot_flower.protocol.model import (
    Arrays,
    ModelFormatError,
    canonical,
    decode_arrays,
    encode_arrays,
    model_digest,
)
from pot_flower.protocol.params import Params, bytes_list, integer


@dataclass
class ChainState:
    """What a validator knows after executing block ``height``."""

    params: Params
    height: int
    head: bytes
    model: Arrays
    model_digest: bytes
    miners: set[bytes] = field(default_factory=set)
    aggregate: IntArray | None = None
    """The last round's aggregate (flat units), kept where a rule needs it."""
    reputation: dict[bytes, int] = field(default_factory=dict)
    """Registered miners' reputations in ppm (1..1e6; a miner at 0 is absent)."""
    dp_clip_units: int | None = None
    """The next round's DP clip norm under adaptive clipping (else ``None``)."""

    @cached_property
    def layout(self) -> Layout:
        """The model's layout (computed once per state, used for every check)."""
        return Layout(self.model)

    def nonce(self) -> bytes:
        """The nonce of the next round."""
        return round_nonce(self.params.run, self.height + 1, self.head)

    def to_bytes(self) -> bytes:
        aggregate = b"" if self.aggregate is None else self.aggregate.astype("<i8")
        return encode(
            {
                "aggregate": bytes(aggregate),
                "head": self.head,
                "height": self.height,
                "miners": sorted(self.miners),
                "model": encode_arrays(self.model),
                "params": self.params.to_value(),
                "reputation": [[k, v] for k, v in sorted(self.reputation.items())],
                **(
                    {"dp-clip-units": self.dp_clip_units}
                    if self.dp_clip_units is not None
                    else {}
                ),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ChainState:
        try:
            value = decode(data)
            if not isinstance(value, dict):
                raise ValueError("state must be a dictionary")
            model_bytes = value["model"]
            head = value["head"]
            if not isinstance(model_bytes, bytes) or not isinstance(head, bytes):
                raise ValueError("model and head must be bytes")
            model = decode_arrays(model_bytes)
            aggregate = value["aggregate"]
            size = sum(a.size for a in model.values())
            if not isinstance(aggregate, bytes) or len(aggregate) not in (0, 8 * size):
                raise ValueError("aggregate must be empty or the model's int64 units")
            miners = set(bytes_list(value["miners"]))
            params = Params.from_value(value["params"])
            return cls(
                params=params,
                height=integer(value["height"]),
                head=head,
                model={k: v.copy() for k, v in model.items()},
                model_digest=hashlib.sha256(model_bytes).digest(),
                miners=miners,
                aggregate=(
                    np.frombuffer(aggregate, dtype="<i8").astype(np.int64)
                    if aggregate
                    else None
                ),
                reputation=_reputation(value["reputation"], miners),
                dp_clip_units=_dp_clip(value, params),
            )
        except (DecodeError, ModelFormatError, KeyError) as exc:
            raise ValueError(f"bad chain state: {exc}") from exc


def _dp_clip(value: dict[str, Decoded], params: Params) -> int | None:
    """The adaptive DP clip norm: present exactly on adaptive chains, in range."""
    adaptive = params.privacy.on and params.privacy.adaptive is not None
    if "dp-clip-units" not in value:
        if adaptive:
            raise ValueError("an adaptive DP chain's state lacks its clip norm")
        return None
    clip = value["dp-clip-units"]
    if not adaptive:
        raise ValueError("a DP clip norm in the state of a chain without one")
    if type(clip) is not int or not 1 <= clip <= MAX_UNITS:
        raise ValueError("the DP clip norm must be an integer in 1..MAX_UNITS")
    return clip


def _reputation(value: object, miners: set[bytes]) -> dict[bytes, int]:
    """Sorted ``[miner, ppm]`` pairs of registered miners, each ppm in 1..1e6."""
    if not isinstance(value, list):
        raise ValueError("reputation must be a list")
    pairs: dict[bytes, int] = {}
    last = b""
    for item in value:
        if not (isinstance(item, list) and len(item) == 2):
            raise ValueError("a reputation entry must be a [miner, ppm] pair")
        miner, ppm = item
        if not isinstance(miner, bytes) or miner not in miners:
            raise ValueError("reputation of an unregistered miner")
        if type(ppm) is not int or not 0 < ppm <= 1_000_000:
            raise ValueError("a reputation must be an integer in 1..1e6")
        if pairs and miner <= last:
            raise ValueError("reputation entries must be sorted and unique")
        pairs[miner] = ppm
        last = miner
    return pairs


def genesis(params: Params, model: Arrays) -> tuple[bytes, ChainState]:
    """Block 0's body and the state after it (``ValueError`` for an empty model)."""
    if not model:
        raise ValueError("the initial model has no arrays")
    model = {k: canonical(v) for k, v in model.items()}
    digest = model_digest(model)
    block = GenesisBlock(
        params=params,
        layout=tuple(
            ArraySpec(k, v.dtype.str, tuple(v.shape)) for k, v in model.items()
        ),
        model=digest,
        previous=GENESIS_PREVIOUS,
    )
    body = block.to_bytes()
    registered = (
        set(params.allowed_miners) if params.registration == "allow-list" else set()
    )
    privacy = params.privacy
    state = ChainState(
        params,
        0,
        block_hash(body),
        model,
        digest,
        registered,
        dp_clip_units=(
            privacy.clip_norm_units
            if privacy.on and privacy.adaptive is not None
            else None
        ),
    )
    return body, state
