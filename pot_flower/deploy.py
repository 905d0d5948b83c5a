"""Committee files and key files: what operators write and validators read.

A committee file (TOML) names every validator (id, address, public key) and every
coordinator allowed to submit requests::

    [committee]
    request-timeout-ms = 1000        # optional PBFT tuning (kebab-case fields)

    [[validators]]
    id = 0
    address = "127.0.0.1:7100"
    public-key = "<64 hex digits>"

    [[coordinators]]
    id = "coordinator"
    public-key = "<64 hex digits>"

Key files hold one raw 32-byte Ed25519 private key (mode 0600).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from pot_flower.consensus.config import CommitteeConfig
from pot_flower.zk.signatures import SigningKey, VerifyKey

TUNING = {f.name.replace("_", "-") for f in fields(CommitteeConfig)} - {
    "replicas",
    "clients",
}


class CommitteeFileError(ValueError):
    """A committee file that cannot be used, with the reason."""


@dataclass(frozen=True)
class CommitteeFile:
    """A parsed committee file."""

    path: Path
    config: CommitteeConfig
    addresses: dict[int, str]

    @property
    def directory(self) -> Path:
        return self.path.parent


def write_key(path: Path, key: SigningKey) -> None:
    """Write ``key`` to a new file only its owner can read (refuses to overwrite)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.to_bytes())


def read_key(path: Path) -> SigningKey:
    """Load a key written by :func:`write_key`."""
    raw = Path(path).read_bytes()
    if len(raw) != 32:
        raise CommitteeFileError(f"{path} is not a 32-byte Ed25519 key file")
    return SigningKey.from_bytes(raw)


def load_committee(path: Path) -> CommitteeFile:
    """Parse and check a committee file."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CommitteeFileError(f"{path}: {exc}") from exc
    validators = data.get("validators")
    if not isinstance(validators, list) or not validators:
        raise CommitteeFileError(f"{path}: no [[validators]]")
    by_id: dict[int, tuple[str, VerifyKey]] = {}
    for entry in validators:
        try:
            vid = int(entry["id"])
            address = str(entry["address"])
            key = VerifyKey(bytes.fromhex(entry["public-key"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CommitteeFileError(
                f"{path}: bad validator entry {entry}: {exc}"
            ) from exc
        if vid in by_id:
            raise CommitteeFileError(f"{path}: validator {vid} listed twice")
        by_id[vid] = (address, key)
    if sorted(by_id) != list(range(len(by_id))):
        raise CommitteeFileError(f"{path}: validator ids must be 0..{len(by_id) - 1}")
    clients: dict[str, VerifyKey] = {}
    for entry in data.get("coordinators", []):
        try:
            clients[str(entry["id"])] = VerifyKey(bytes.fromhex(entry["public-key"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CommitteeFileError(f"{path}: bad coordinator {entry}: {exc}") from exc
    tuning = data.get("committee", {})
    unknown = set(tuning) - TUNING
    if unknown:
        raise CommitteeFileError(f"{path}: unknown [committee] keys {sorted(unknown)}")
    try:
        config = CommitteeConfig(
            replicas=tuple(by_id[i][1] for i in range(len(by_id))),
            clients=clients,
            **{k.replace("-", "_"): int(v) for k, v in tuning.items()},
        )
    except (TypeError, ValueError) as exc:
        raise CommitteeFileError(f"{path}: {exc}") from exc
    return CommitteeFile(Path(path), config, {i: by_id[i][0] for i in by_id})


def render_committee(
    validators: list[tuple[str, VerifyKey]],
    coordinators: dict[str, VerifyKey],
    tuning: dict[str, int] | None = None,
) -> str:
    """The TOML text of a committee file."""
    lines = ["# pot-flower committee file", "[committee]"]
    lines += [f"{k} = {v}" for k, v in sorted((tuning or {}).items())]
    for i, (address, key) in enumerate(validators):
        lines += [
            "",
            "[[validators]]",
            f"id = {i}",
            f'address = "{address}"',
            f'public-key = "{key.raw.hex()}"',
        ]
    for cid, key in sorted(coordinators.items()):
        lines += [
            "",
            "[[coordinators]]",
            f'id = "{cid}"',
            f'public-key = "{key.raw.hex()}"',
        ]
    return "\n".join(lines) + "\n"
