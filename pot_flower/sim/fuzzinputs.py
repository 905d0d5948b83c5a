"""Hostile inputs for a validator's ports: random, mutated and impostor messages.

Impostor messages are well-formed messages of every type, signed by keys outside
the committee; mutations flip, truncate, splice and duplicate bytes of them. None
of these may change a validator's state: each must be dropped with a reason.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

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
    Superseded,
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
        Superseded(client, 1, 2, n - 1).signed(keys[n - 1]),
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


#: Every RPC of the validator service and the shape of its call.
RPC_SHAPES = {
    "Deliver": "unary",
    "Submit": "unary",
    "Health": "unary",
    "Holds": "unary",
    "Score": "unary",
    "GetBlock": "unary",
    "Certify": "unary",
    "SignSeals": "unary",
    "Link": "stream-in",
    "PutPayload": "stream-in",
    "Replies": "stream-out",
    "GetPayload": "stream-out",
}
_EDGE_INTS = [0, 1, 2**31 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]


def _u64(rng: random.Random) -> int:
    return rng.choice(_EDGE_INTS) if rng.random() < 0.5 else rng.randrange(2**64)


def _text(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.3:
        return "coordinator"
    if pick < 0.4:
        return "x" * rng.randint(1000, 20000)
    return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randint(0, 24)))


def _request(method: str, rng: random.Random, corpus: list[bytes]) -> bytes:
    """A well-formed request message of ``method`` with hostile field values."""
    from pot_flower.transport import pot_pb2

    blob = rng.choice(corpus) if rng.random() < 0.5 else rng.randbytes(64)
    blob = mutate(blob, rng) if rng.random() < 0.7 else blob
    message: Any
    if method in ("Deliver", "Submit", "Link", "Certify", "SignSeals"):
        more = [mutate(rng.choice(corpus), rng) for _ in range(rng.randint(0, 3))]
        message = pot_pb2.Frame(data=blob, more=more)
    elif method == "PutPayload":
        message = pot_pb2.Chunk(
            digest=rng.randbytes(rng.choice([0, 31, 32, 33])),
            data=rng.randbytes(rng.randint(0, 512)),
            client=_text(rng),
            run=_u64(rng),
            size=_u64(rng),
            signature=rng.randbytes(rng.choice([0, 63, 64])),
        )
    elif method == "Replies":
        message = pot_pb2.Subscribe(client=_text(rng))
    elif method == "GetPayload":
        message = pot_pb2.PayloadRequest(digest=rng.randbytes(rng.choice([0, 32, 40])))
    elif method == "Holds":
        count = rng.choice([0, 1, 5, 100])
        digests = [rng.randbytes(rng.choice([32, 32, 7])) for _ in range(count)]
        message = pot_pb2.HoldsRequest(digests=digests)
    elif method == "Score":
        message = pot_pb2.ScoreRequest(run=_u64(rng), batch=blob)
    elif method == "GetBlock":
        message = pot_pb2.BlockRequest(
            run=_u64(rng), height=_u64(rng), with_model=rng.random() < 0.5
        )
    else:
        message = pot_pb2.HealthRequest()
    return bytes(message.SerializeToString())


def hostile_rpcs(
    corpus: list[bytes], count: int, seed: int = 0
) -> Iterator[tuple[str, list[bytes]]]:
    """``count`` calls as ``(method, request messages)`` on every RPC in turn.

    Requests are raw bytes on the wire: random bytes, well-formed messages with
    hostile field values (out-of-range integers, wrong digest lengths, unknown or
    huge client ids, forged signatures), or their serializations mutated. Streams
    mix good and bad messages.
    """
    rng = random.Random(seed)
    methods = sorted(RPC_SHAPES)
    for i in range(count):
        method = methods[i % len(methods)]
        messages = []
        for _ in range(rng.randint(1, 4) if RPC_SHAPES[method] == "stream-in" else 1):
            roll = rng.random()
            if roll < 0.25:
                messages.append(rng.randbytes(rng.randint(0, 256)))
            elif roll < 0.75:
                messages.append(_request(method, rng, corpus))
            else:
                messages.append(mutate(_request(method, rng, corpus), rng))
        yield method, messages


def raw_call(channel: Any, method: str, messages: list[bytes], timeout: float) -> str:
    """Send raw request bytes to ``method``; the status code's name."""
    import grpc

    shape = RPC_SHAPES[method]
    kinds = {"unary": "unary_unary", "stream-in": "stream_unary"}
    call = getattr(channel, kinds.get(shape, "unary_stream"))(
        f"/pot.v1.Validator/{method}",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    try:
        if shape == "stream-in":
            call(iter(messages), timeout=timeout)
        elif shape == "stream-out":
            for _ in call(messages[0], timeout=timeout):
                pass
        else:
            call(messages[0], timeout=timeout)
    except grpc.RpcError as exc:
        return str(exc.code().name)
    return "OK"
