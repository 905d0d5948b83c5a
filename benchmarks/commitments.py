"""Commitment proofs: Pedersen commit cost, batched opening checks, BLS certificates.

- Pedersen commit of an update of 10**4, 10**5, 10**6 fixed-point entries
  (|x| < 2**20: updates near 1 in L2) with the fast backend (arkworks MSM,
  generators cached) and the reference (py-ecc, timed on 1,000 entries and given
  per entry: it is linear).
- A validator's opening checks for a round of 100 miners: one by one against one
  batched random linear combination (``verify_openings``).
- ``pot ledger audit`` on a Pedersen chain built here (5 miners, the quickstart
  CNN's 37,610 entries, 200 rounds by default).
- Quorum certificates: bytes and verification time of today's certificate (a
  list of Ed25519 signatures, ``protocol/certificate.py``) against one aggregated
  BLS signature plus a signer bitmap, for committees of 4, 16 and 64 (quorum
  2f + 1 signers).

One core (BLAS and Rayon pinned to one thread). Prints one line per figure and
writes JSON.

    python benchmarks/commitments.py
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np

from pot_flower.protocol.certificate import (
    BlsKey,
    CertificateKind,
    Certifiers,
    sign_block,
)
from pot_flower.zk.pedersen import (
    ORDER,
    FastBackend,
    fast_backend,
    reference_backend,
    verify_openings,
)
from pot_flower.zk.signatures import SigningKey


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def update(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-(2**20), 2**20, size)


def commit_costs(sizes: Sequence[int], repeats: int) -> list[dict[str, float]]:
    """The default engine against arkworks (same cache) and the py-ecc reference."""
    fast, ref = fast_backend(), reference_backend()
    ark = FastBackend(engine="arkworks")
    ref_values = update(1000, 1)
    ref_seconds = median_seconds(lambda: ref.commit(ref_values, 12345), 1)
    rows = []
    for size in sizes:
        values = update(size, size)
        started = time.perf_counter()
        fast.commit(values[:1], 1)  # generators: hashed or loaded once
        fast.commit(values, 1)
        warm = time.perf_counter() - started
        ark.commit(values, 1)
        seconds = median_seconds(
            lambda v=values: fast.commit(v, secrets.randbelow(ORDER)), repeats
        )
        ark_seconds = median_seconds(
            lambda v=values: ark.commit(v, secrets.randbelow(ORDER)), repeats
        )
        rows.append(
            {
                "entries": size,
                "engine": fast.name,
                "fast_seconds": seconds,
                "arkworks_seconds": ark_seconds,
                "reference_seconds_estimated": ref_seconds * size / 1000,
                "first_use_seconds": warm,
            }
        )
        print(
            f"commit {size:>9,d} entries: {fast.name} {seconds:.3f} s, arkworks "
            f"{ark_seconds:.3f} s, reference ~{ref_seconds * size / 1000:.0f} s "
            f"(first use {warm:.1f} s)",
            flush=True,
        )
    return rows


def opening_checks(miners: int, size: int, repeats: int) -> dict[str, float]:
    fast = fast_backend()
    vectors = [update(size, 100 + j) for j in range(miners)]
    blindings = [secrets.randbelow(ORDER) for _ in vectors]
    commitments = [fast.commit(v, r) for v, r in zip(vectors, blindings, strict=True)]
    batched = median_seconds(
        lambda: verify_openings(commitments, vectors, blindings), repeats
    )
    single = median_seconds(
        lambda: [
            fast.commit(v, r) == c
            for v, r, c in zip(vectors, blindings, commitments, strict=True)
        ],
        1,
    )
    print(
        f"openings, {miners} miners x {size:,d}: batched {batched:.3f} s, "
        f"one by one {single:.3f} s",
        flush=True,
    )
    return {
        "miners": miners,
        "entries": size,
        "batched_seconds": batched,
        "one_by_one_seconds": single,
    }


def certificate(n: int, repeats: int) -> dict[str, float]:
    """One committee's certificate in both kinds: ledger bytes and verification time.

    Both are what the chain stores and checks (``protocol/certificate.py``):
    every voter's Ed25519 signature, against one BLS aggregate and a bitmap.
    """
    digest = secrets.token_bytes(32)
    quorum = 2 * ((n - 1) // 3) + 1
    keys = [SigningKey.from_seed(secrets.token_bytes(32)) for _ in range(n)]
    ed = Certifiers(
        CertificateKind.ED25519, tuple(k.verify_key.raw for k in keys), quorum
    )
    bls = Certifiers(CertificateKind.BLS, tuple(BlsKey.of(k).key for k in keys), quorum)
    made = {}
    for certifiers in (ed, bls):
        votes = {
            i: sign_block(k, 7, digest, certifiers.kind)
            for i, k in enumerate(keys[:quorum])
        }
        made[certifiers.kind] = certifiers.assemble(7, digest, votes)
    today, aggregated = made[CertificateKind.ED25519], made[CertificateKind.BLS]
    ed_seconds = median_seconds(lambda: today.verify(ed), repeats)
    bls_seconds = median_seconds(lambda: aggregated.verify(bls), repeats)
    ed_bytes = len(today.to_bytes())  # the ledger's certificate column
    bls_bytes = len(aggregated.to_bytes())
    print(
        f"certificate n={n} (quorum {quorum}): Ed25519 {ed_bytes} B "
        f"{1e3 * ed_seconds:.2f} ms, BLS {bls_bytes} B {1e3 * bls_seconds:.2f} ms",
        flush=True,
    )
    return {
        "validators": n,
        "quorum": quorum,
        "ed25519_bytes": ed_bytes,
        "bls_bytes": bls_bytes,
        "ed25519_verify_seconds": ed_seconds,
        "bls_verify_seconds": bls_seconds,
    }


def audit_time(rounds: int, entries: int, miners: int) -> dict[str, float]:
    """``pot ledger audit`` on a Pedersen chain of ``rounds`` rounds (built here)."""
    import hashlib
    import tempfile

    from pot_flower.audit.opening import audit_openings
    from pot_flower.committee.embedded import EmbeddedCommittee
    from pot_flower.protocol.batch import SubmissionRef
    from pot_flower.protocol.commitments import CommitmentKind
    from pot_flower.protocol.fixedpoint import max_norm_units
    from pot_flower.protocol.submission import build_submission

    rng = np.random.default_rng(5)
    model = {"w": rng.standard_normal(entries).astype(np.float32)}
    keys = [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(miners)]
    with tempfile.TemporaryDirectory(prefix="pot-audit-") as tmp:
        committee = EmbeddedCommittee(
            Path(tmp),
            run=1,
            model=model,
            norm_bound_units=max_norm_units(100.0),
            commitment=CommitmentKind.PEDERSEN,
        )
        started = time.perf_counter()
        current = model
        for _ in range(rounds):
            ticket = committee.ticket()
            refs, payloads = [], {}
            for i, key in enumerate(keys):
                step = rng.standard_normal(entries).astype(np.float32) * 1e-3
                sub = build_submission(
                    key,
                    run=1,
                    round_=ticket.round,
                    node=10 + i,
                    nonce=ticket.nonce,
                    received=current,
                    returned={"w": current["w"] + step},
                    num_examples=100,
                    commitment=CommitmentKind.PEDERSEN,
                )
                data = sub.validator_payload
                digest = hashlib.sha256(data).digest()
                payloads[digest] = data
                refs.append(
                    SubmissionRef(10 + i, sub.envelope_bytes, sub.signature, digest)
                )
            current = committee.certify_round(refs, payloads).model
        committee.close()
        built = time.perf_counter() - started
        ledger = Path(tmp) / "validator-0"
        size = sum(f.stat().st_size for f in ledger.rglob("*") if f.is_file())
        started = time.perf_counter()
        report = audit_openings(ledger)
        seconds = time.perf_counter() - started
    assert report.ok, report.problem
    print(
        f"audit of {rounds} rounds ({miners} miners x {entries:,d} entries): "
        f"{seconds:.2f} s ({1e3 * seconds / rounds:.1f} ms a round); ledger "
        f"{size / 1e6:.0f} MB; chain built in {built:.0f} s",
        flush=True,
    )
    return {
        "rounds": rounds,
        "entries": entries,
        "miners": miners,
        "audit_seconds": seconds,
        "ledger_bytes": size,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--miners", type=int, default=100)
    parser.add_argument("--opening-entries", type=int, default=37_610)
    parser.add_argument("--committees", default="4,16,64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--audit-rounds", type=int, default=200)
    parser.add_argument("--audit-miners", type=int, default=5)
    parser.add_argument("--json-out", default="benchmarks/results/commitments.json")
    parser.add_argument(
        "--parts",
        default="commit,openings,certificates,audit",
        help="what to measure; the others keep their figures in --json-out",
    )
    args = parser.parse_args(argv)
    measure = {
        "commit": lambda: commit_costs(
            [int(s) for s in args.sizes.split(",")], args.repeats
        ),
        "openings": lambda: opening_checks(
            args.miners, args.opening_entries, args.repeats
        ),
        "certificates": lambda: [
            certificate(int(n), args.repeats) for n in args.committees.split(",")
        ],
        "audit": lambda: audit_time(
            args.audit_rounds, args.opening_entries, args.audit_miners
        ),
    }
    path = Path(args.json_out)
    out = json.loads(path.read_text()) if path.exists() else {}
    settings = out.setdefault("settings", {})
    if any(isinstance(v, str) for v in settings.values()):  # one run measured all
        settings = out["settings"] = {part: dict(settings) for part in measure}
    for part in args.parts.split(","):
        out[part] = measure[part]()
        settings[part] = {k: str(v) for k, v in vars(args).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    if out.get("commit") and out.get("certificates"):
        plot(out, path.with_suffix(".png"))
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    """Commit time per engine against entries; certificate bytes against n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (commit, certs) = plt.subplots(1, 2, figsize=(10, 3.8))
    rows = out["commit"]
    entries = [r["entries"] for r in rows]
    for key, label in (
        ("fast_seconds", "C engine (zk/_msm.c)"),
        ("arkworks_seconds", "py-arkworks"),
        ("reference_seconds_estimated", "py-ecc reference (estimated)"),
    ):
        commit.loglog(entries, [r[key] for r in rows], marker="o", label=label)
    commit.set_xlabel("entries committed")
    commit.set_ylabel("seconds per commitment")
    commit.set_title("Pedersen commit, one core")
    rows = out["certificates"]
    sizes = [r["validators"] for r in rows]
    certs.plot(
        sizes, [r["ed25519_bytes"] for r in rows], marker="o", label="Ed25519 list"
    )
    certs.plot(sizes, [r["bls_bytes"] for r in rows], marker="o", label="BLS aggregate")
    certs.set_xlabel("validators")
    certs.set_ylabel("bytes per block certificate")
    certs.set_title("Certificate size")
    for ax in (commit, certs):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
