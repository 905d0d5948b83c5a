"""Committee files and key files: what operators write and validators read.

A committee file (TOML) names every validator (id, address, public key) and every
coordinator allowed to submit requests::

    [committee]
    request-timeout-ms = 1000        # optional PBFT tuning (kebab-case fields)
    relay-votes = true

    [[validators]]
    id = 0
    address = "127.0.0.1:7100"
    public-key = "<64 hex digits>"
    bls-public-key = "<96 hex digits>"   # optional, for BLS certificates: the
    bls-proof = "<192 hex digits>"       # key derived from the validator's key,
    bls-endorsement = "<128 hex digits>" # its proof of possession, and the
                                         # validator's Ed25519 signature of it

    [[coordinators]]
    id = "coordinator"
    public-key = "<64 hex digits>"

    [transport]
    tls = true                       # the default: mutual TLS with the files in
    tls-dir = "tls"                  # tls-dir: ca.pem, <name>.pem, <name>-key.pem

    [limits]                         # optional resource bounds of every validator
    payload-quota-mb = 16384         # (kebab-case fields of transport.limits.Limits)

    [scoring]                        # optional: Proof-of-Training scoring
    score-fn = "my_app.task:score"   # installed on every validator host

    [privacy]                        # optional: the committee's DP noise key
    noise-key-sha256 = "<64 hex digits>"

With ``[scoring]``, every validator loads the task owner's score function at start
(and refuses to start without it), and runs of this committee are scored chains.
With ``[privacy]``, every validator loads ``noise.key`` from beside the committee
file and refuses to start unless it has that SHA-256: the secret every honest
validator derives DP noise seeds from (never copied to the coordinator's host).

Key files hold one raw 32-byte Ed25519 private key (mode 0600). Names for TLS files
are ``validator-<id>`` and the coordinator's id.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import grpc

from pot_flower.consensus.config import CommitteeConfig
from pot_flower.protocol.certificate import BlsKey, check_bls_keys
from pot_flower.transport.limits import Limits, limits_from_table
from pot_flower.zk.signatures import SigningKey, VerifyKey

#: [committee] keys and their types: every CommitteeConfig field but membership.
TUNING = {
    f.name.replace("_", "-"): get_type_hints(CommitteeConfig)[f.name]
    for f in fields(CommitteeConfig)
    if f.name not in ("replicas", "clients")
}


class CommitteeFileError(ValueError):
    """A committee file that cannot be used, with the reason."""


@dataclass(frozen=True)
class CommitteeFile:
    """A parsed committee file."""

    path: Path
    config: CommitteeConfig
    addresses: dict[int, str]
    tls_dir: Path | None  # None: plaintext (development on loopback only)
    limits: Limits = field(default_factory=Limits)
    score_fn: str | None = None  # "module:function" every validator loads
    noise_key_digest: bytes | None = None  # SHA-256 of the validators' noise.key
    bls: tuple[BlsKey, ...] = ()  # by validator id, or none

    @property
    def noise_key_path(self) -> Path:
        return self.path.parent / NOISE_KEY_FILE

    @property
    def directory(self) -> Path:
        return self.path.parent

    def _read(self, name: str) -> tuple[bytes, bytes, bytes]:
        assert self.tls_dir is not None
        try:
            return (
                (self.tls_dir / "ca.pem").read_bytes(),
                (self.tls_dir / f"{name}-key.pem").read_bytes(),
                (self.tls_dir / f"{name}.pem").read_bytes(),
            )
        except OSError as exc:
            raise CommitteeFileError(f"TLS files for {name!r}: {exc}") from exc

    def server_credentials(self, vid: int) -> grpc.ServerCredentials | None:
        """Mutual-TLS server credentials for validator ``vid``, or None.

        Peers and coordinators must present certificates from the committee CA.
        """
        if self.tls_dir is None:
            return None
        ca, key, cert = self._read(f"validator-{vid}")
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=True
        )

    def channel_credentials(self, name: str) -> grpc.ChannelCredentials | None:
        """MTLS credentials to dial validators as ``name``, or None without TLS."""
        if self.tls_dir is None:
            return None
        ca, key, cert = self._read(name)
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )


def write_key(path: Path, key: SigningKey) -> None:
    """Write ``key`` to a new file only its owner can read (refuses to overwrite)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.to_bytes())


NOISE_KEY_FILE = "noise.key"


def write_noise_key(path: Path) -> bytes:
    """A fresh 32-byte noise key in a new file only its owner can read; its hash."""
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return hashlib.sha256(key).digest()


def read_noise_key(path: Path, digest: bytes) -> bytes:
    """The noise key at ``path``, checked against the committee file's digest."""
    try:
        key = Path(path).read_bytes()
    except OSError as exc:
        raise CommitteeFileError(
            f"the committee file names a noise key but {path} cannot be read: {exc}"
        ) from exc
    if len(key) != 32 or hashlib.sha256(key).digest() != digest:
        raise CommitteeFileError(
            f"{path} is not the noise key the committee file names "
            "([privacy] noise-key-sha256)"
        )
    return key


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
    bls = _bls_keys(
        path,
        {int(e["id"]): e for e in validators},
        tuple(by_id[i][1].raw for i in range(len(by_id))),
    )
    clients: dict[str, VerifyKey] = {}
    for entry in data.get("coordinators", []):
        try:
            clients[str(entry["id"])] = VerifyKey(bytes.fromhex(entry["public-key"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CommitteeFileError(f"{path}: bad coordinator {entry}: {exc}") from exc
    tuning = data.get("committee", {})
    unknown = set(tuning) - set(TUNING)
    if unknown:
        raise CommitteeFileError(f"{path}: unknown [committee] keys {sorted(unknown)}")
    try:
        settings: dict[str, Any] = {
            k.replace("-", "_"): _tuning_value(k, v) for k, v in tuning.items()
        }
        config = CommitteeConfig(
            replicas=tuple(by_id[i][1] for i in range(len(by_id))),
            clients=clients,
            **settings,
        )
    except (TypeError, ValueError) as exc:
        raise CommitteeFileError(f"{path}: {exc}") from exc
    transport = data.get("transport", {})
    tls_dir: Path | None = None
    if transport.get("tls", True):  # on unless a committee file turns it off
        tls_dir = Path(path).parent / str(transport.get("tls-dir", "tls"))
        if not (tls_dir / "ca.pem").exists():
            raise CommitteeFileError(
                f"{path}: TLS is on but {tls_dir / 'ca.pem'} is missing "
                "(pot committee init generates it; tls = false for loopback tests)"
            )
    table = data.get("limits", {})
    try:
        if not isinstance(table, dict):
            raise ValueError("[limits] must be a table")
        limits = limits_from_table(table)
    except ValueError as exc:
        raise CommitteeFileError(f"{path}: {exc}") from exc
    return CommitteeFile(
        Path(path),
        config,
        {i: by_id[i][0] for i in by_id},
        tls_dir,
        limits,
        _score_fn(path, data.get("scoring", {})),
        _noise_key_digest(path, data.get("privacy", {})),
        bls,
    )


def _bls_keys(
    path: Path, entries: dict[int, dict[str, Any]], validators: tuple[bytes, ...]
) -> tuple[BlsKey, ...]:
    """Every validator's BLS key, proof and endorsement, or none (checked here).

    Refused when the committee is formed: a key without a valid proof (a rogue
    key, which summed into an aggregate forges every certificate) or without its
    validator's Ed25519 endorsement.
    """
    named = [i for i, e in entries.items() if set(e) & set(BLS_FIELDS)]
    if not named:
        return ()
    if len(named) != len(entries):
        raise CommitteeFileError(
            f"{path}: {', '.join(BLS_FIELDS)} are given for every validator or for none"
        )
    try:
        keys = tuple(
            BlsKey(*(bytes.fromhex(entries[i][f]) for f in BLS_FIELDS))
            for i in range(len(entries))
        )
        check_bls_keys(validators, keys)
    except (KeyError, TypeError, ValueError) as exc:
        raise CommitteeFileError(f"{path}: BLS keys: {exc}") from exc
    return keys


BLS_FIELDS = ("bls-public-key", "bls-proof", "bls-endorsement")


def _noise_key_digest(path: Path, table: object) -> bytes | None:
    """``[privacy] noise-key-sha256``: the noise key's SHA-256, or None."""
    if not isinstance(table, dict) or set(table) - {"noise-key-sha256"}:
        raise CommitteeFileError(f"{path}: [privacy] holds only noise-key-sha256")
    text = table.get("noise-key-sha256")
    if text is None:
        return None
    try:
        digest = bytes.fromhex(str(text))
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise CommitteeFileError(
            f"{path}: [privacy] noise-key-sha256 must be 64 hex digits"
        )
    return digest


def _score_fn(path: Path, table: object) -> str | None:
    """``[scoring] score-fn``: a ``"module:function"`` name, or None."""
    if not isinstance(table, dict) or set(table) - {"score-fn"}:
        raise CommitteeFileError(f"{path}: [scoring] holds only score-fn")
    name = table.get("score-fn")
    if name is None:
        return None
    module, _, function = str(name).partition(":")
    if not isinstance(name, str) or not module or not function:
        raise CommitteeFileError(
            f"{path}: [scoring] score-fn must be 'module:function', not {name!r}"
        )
    return name


def _tuning_value(key: str, value: object) -> int | bool:
    """A [committee] value of the type its CommitteeConfig field has."""
    want = TUNING[key]
    if want is bool:
        if not isinstance(value, bool):
            raise ValueError(f"[committee] {key} must be true or false")
        return value
    if type(value) is not int:
        raise ValueError(f"[committee] {key} must be an integer")
    return value


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(value: int | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def render_committee(
    validators: list[tuple[str, VerifyKey]],
    coordinators: dict[str, VerifyKey],
    tuning: dict[str, int | bool] | None = None,
    *,
    tls: bool = True,
    score_fn: str | None = None,
    noise_key_digest: bytes | None = None,
    bls: Sequence[BlsKey] = (),
) -> str:
    """The TOML text of a committee file (``bls``: BLS keys, by index)."""
    lines = ["# pot-flower committee file", "[committee]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in sorted((tuning or {}).items())]
    lines += ["", "[transport]", f"tls = {'true' if tls else 'false'}"]
    if tls:
        lines.append('tls-dir = "tls"')
    if score_fn:
        lines += ["", "[scoring]", f"score-fn = {_toml_string(score_fn)}"]
    if noise_key_digest is not None:
        lines += ["", "[privacy]", f'noise-key-sha256 = "{noise_key_digest.hex()}"']
    for i, (address, key) in enumerate(validators):
        lines += [
            "",
            "[[validators]]",
            f"id = {i}",
            f'address = "{address}"',
            f'public-key = "{key.raw.hex()}"',
        ]
        if bls:
            lines += [
                f'{name} = "{value.hex()}"'
                for name, value in zip(BLS_FIELDS, bls[i].to_value(), strict=True)
                if isinstance(value, bytes)
            ]
    for cid, key in sorted(coordinators.items()):
        lines += [
            "",
            "[[coordinators]]",
            f'id = "{cid}"',
            f'public-key = "{key.raw.hex()}"',
        ]
    return "\n".join(lines) + "\n"
