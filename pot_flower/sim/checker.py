"""Safety and liveness checks over what honest replicas and clients observed."""

from __future__ import annotations

from dataclasses import dataclass, field

RequestId = tuple[str, int]


@dataclass
class ReplicaTrace:
    """What one honest replica did during a run (kept across its restarts)."""

    executed: dict[int, bytes] = field(default_factory=dict)  # seq -> batch digest
    results: dict[RequestId, bytes] = field(default_factory=dict)
    last_executed: int = 0
    checkpoints: dict[int, bytes] = field(default_factory=dict)  # seq -> state digest


@dataclass
class Verdict:
    """Violations found in one run (empty lists: the run is correct)."""

    safety: list[str] = field(default_factory=list)
    liveness: list[str] = field(default_factory=list)


def check_safety(
    traces: dict[int, ReplicaTrace], accepted: dict[RequestId, bytes]
) -> list[str]:
    """Honest replicas never disagree; clients only accept what honest ones computed.

    * the same sequence number carries the same batch at every honest replica;
    * the same request has the same result at every honest replica;
    * the same checkpoint has the same state digest at every honest replica;
    * every result a client accepted is the honest replicas' result.
    """
    problems: list[str] = []
    seen_batch: dict[int, tuple[int, bytes]] = {}
    seen_result: dict[RequestId, tuple[int, bytes]] = {}
    seen_state: dict[int, tuple[int, bytes]] = {}
    for rid in sorted(traces):
        trace = traces[rid]
        for table, seen, what in (
            (trace.executed, seen_batch, "batch at seq"),
            (trace.checkpoints, seen_state, "state digest at seq"),
        ):
            for seq, digest in table.items():
                first = seen.setdefault(seq, (rid, digest))
                if first[1] != digest:
                    problems.append(
                        f"replicas {first[0]} and {rid} disagree on the {what} {seq}"
                    )
        for request, result in trace.results.items():
            first_r = seen_result.setdefault(request, (rid, result))
            if first_r[1] != result:
                problems.append(
                    f"replicas {first_r[0]} and {rid} computed different results "
                    f"for request {request}"
                )
    for request, result in accepted.items():
        honest = seen_result.get(request)
        if honest is not None and honest[1] != result:
            problems.append(
                f"client accepted a result no honest replica computed for {request}"
            )
    return problems


def check_liveness(
    traces: dict[int, ReplicaTrace],
    submitted: list[RequestId],
    accepted: dict[RequestId, bytes],
    request_seq: dict[RequestId, int],
) -> list[str]:
    """Every submitted request completed at its client and executed everywhere."""
    problems: list[str] = []
    for request in submitted:
        if request not in accepted:
            problems.append(f"request {request} never completed at its client")
            continue
        seq = request_seq.get(request)
        if seq is None:
            problems.append(
                f"request {request} completed but no honest replica executed it"
            )
            continue
        for rid, trace in sorted(traces.items()):
            if trace.last_executed < seq:
                problems.append(
                    f"replica {rid} never executed request {request} (seq {seq})"
                )
    return problems
