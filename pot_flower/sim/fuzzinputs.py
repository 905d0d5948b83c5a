"""Hostile inputs for a validator's ports: random, mutated and impostor messages.

Impostor messages are well-formed messages of every type, signed by keys outside
the committee; mutations flip, truncate, splice and duplicate bytes of them. None
of these may change a validator's state: each must be dropped with a reason.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from pot_flower.consensus.messages import (
    Checkpoint,
    Commit,
    CommitCertificate,
    Committed,
    FetchState,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Reply,
    Request,
    StateTransfer,
    Status,
    ViewChange,
    Votes,
    batch_digest,
    sha256,
)
from pot_flower.zk.signatures import SigningKey


def impostor_corpus(n: int, client: str = "coordinator", seed: int = 0) -> list[bytes]:
    """One message of every type for an n-validator committee, wrongly signed."""
    keys = [SigningKey.from_seed(b"impostor-%d-%d" % (seed, i)) for i in range(n)]
    client_key = SigningKey.from_seed(b"impostor-client-%d" % seed)
    request = Request(client, 10**15, b"op").signed(client_key)
    pp = PrePrepare(0, 1, batch_digest((request,)), (request,), 0).signed(keys[0])
    prepares = tuple(
        Prepare(0, 1, pp.digest, i).signed(keys[i]) for i in range(1, min(n, 3))
    )
    commits = tuple(
        Commit(0, 1, pp.digest, i).signed(keys[i]) for i in range(min(n, 3))
    )
    checkpoints = tuple(
        Checkpoint(2, sha256(b"s"), i).signed(keys[i]) for i in range(min(n, 3))
    )
    view_change = ViewChange(
        1, 2, checkpoints, (PreparedCertificate(pp, prepares),), 1 % n
    ).signed(keys[1 % n])
    messages = [
        request,
        pp,
        *prepares,
        *commits,
        Reply(0, client, 1, b"result", n - 1).signed(keys[n - 1]),
        *checkpoints,
        view_change,
        NewView(1, (view_change,), (), 1 % n).signed(keys[1 % n]),
        Status(0, False, 0, 0, n - 1).signed(keys[n - 1]),
        Committed(CommitCertificate(pp, commits), n - 1).signed(keys[n - 1]),
        Votes(prepares, commits, n - 1).signed(keys[n - 1]),
        FetchState(2, n - 1).signed(keys[n - 1]),
        StateTransfer(2, b"snapshot", checkpoints, 0).signed(keys[0]),
    ]
    return [m.to_bytes() for m in messages]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random mutation of ``data``."""
    if not data:
        return bytes([rng.randrange(256)])
    choice = rng.randrange(6)
    buf = bytearray(data)
    if choice == 0:  # flip bits
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif choice == 1:  # truncate
        del buf[rng.randrange(len(buf)) :]
    elif choice == 2:  # insert bytes
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = rng.randbytes(rng.randint(1, 16))
    elif choice == 3:  # duplicate a slice
        a = rng.randrange(len(buf))
        b = rng.randrange(a, len(buf) + 1)
        buf[b:b] = buf[a:b]
    elif choice == 4:  # overwrite with digits (lengths, integers)
        at = rng.randrange(len(buf))
        buf[at : at + 3] = str(rng.randrange(10**6)).encode()[:3]
    else:  # splice two halves
        cut = rng.randrange(len(buf))
        buf = buf[cut:] + buf[:cut]
    return bytes(buf)


def hostile_inputs(
    corpus: list[bytes], count: int, seed: int = 0
) -> Iterator[tuple[str, bytes]]:
    """``count`` inputs as ``(kind, bytes)``: random, mutated or impostor."""
    rng = random.Random(seed)
    for _ in range(count):
        roll = rng.random()
        if roll < 0.2:
            yield "random", rng.randbytes(rng.randint(0, 2048))
        elif roll < 0.3:
            yield "impostor", rng.choice(corpus)
        else:
            data = rng.choice(corpus)
            for _ in range(rng.randint(1, 3)):
                data = mutate(data, rng)
            yield "mutated", data
