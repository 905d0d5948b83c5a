"""``demo_attack_mod``: make some nodes of a demo federation Byzantine.

For watching the committee at work (and red-teaming a deployment): the nodes whose
``partition-id`` is below ``pot-demo-byzantine`` replace their trained update by an
attack before ``pot_mod`` signs it, so the committee sees a correctly signed but
malicious submission. Non-omniscient: each attacker knows only its own update
(:mod:`pot_flower.attacks` has the omniscient, colluding attacks for simulations).
Put it after ``pot_mod``: ``ClientApp(mods=[pot_mod, demo_attack_mod])``.
"""

from __future__ import annotations

from collections.abc import Callable
from logging import WARNING

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.common import log

from pot_flower.attacks import MAX_CLAIM
from pot_flower.protocol.records import (
    DEMO_ATTACK_KEY,
    DEMO_BYZANTINE_KEY,
    arrays_of,
)

ClientAppCallable = Callable[[Message, Context], Message]

DEMO_ATTACKS = ("sign-flip", "gaussian", "free-rider", "inflate")
"""What ``pot-demo-attack`` may name."""


def _attacked(
    received: dict[str, np.ndarray],
    returned: dict[str, np.ndarray],
    attack: str,
    seed: int,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, base in received.items():
        new = returned[name]
        if base.dtype.kind != "f":
            out[name] = new
            continue
        update = new.astype(np.float64) - base.astype(np.float64)
        if attack in ("sign-flip", "inflate"):
            update = -update
        elif attack == "gaussian":  # noise ten times the update's scale
            scale = 10 * float(np.abs(update).mean()) + 1e-6
            update = rng.standard_normal(update.shape) * scale
        else:  # free-rider: the received model, untrained
            update = np.zeros_like(update)
        out[name] = (base.astype(np.float64) + update).astype(base.dtype)
    return out


def demo_attack_mod(
    msg: Message, ctxt: Context, call_next: ClientAppCallable
) -> Message:
    """Turn this node's train reply into the configured demo attack (a Flower mod)."""
    reply = call_next(msg, ctxt)
    attack = str(ctxt.run_config.get(DEMO_ATTACK_KEY, "") or "")
    count = int(ctxt.run_config.get(DEMO_BYZANTINE_KEY, 0) or 0)
    partition = ctxt.node_config.get("partition-id")
    if (
        not attack
        or msg.metadata.message_type.split(".")[0] != "train"
        or reply.has_error()
        or partition is None
        or int(partition) >= count
    ):
        return reply
    if attack not in DEMO_ATTACKS:
        choices = ", ".join(DEMO_ATTACKS)
        raise ValueError(f"unknown {DEMO_ATTACK_KEY} {attack!r}; choose from {choices}")
    ins, outs = list(msg.content.array_records.values()), reply.content.array_records
    if len(ins) != 1 or len(outs) != 1:
        return reply
    received_record = ins[0]
    ((key_out, returned_record),) = outs.items()
    received, returned = arrays_of(received_record), arrays_of(returned_record)
    if set(received) != set(returned):
        return reply
    attacked = _attacked(received, returned, attack, seed=int(partition))
    # Ground truth for demos: which node attacked (the ledger only names miners).
    log(
        WARNING,
        "demo attack: node %d (partition %s) sends %s",
        ctxt.node_id,
        partition,
        attack,
    )
    content = RecordDict(
        {key_out: ArrayRecord({k: Array(v) for k, v in attacked.items()})}
    )
    for name, metrics in reply.content.metric_records.items():
        values = dict(metrics)
        if attack == "inflate":
            values["num-examples"] = MAX_CLAIM
        content[name] = MetricRecord(values)
    for name, config in reply.content.config_records.items():
        content[name] = config
    return Message(content=content, reply_to=msg)
