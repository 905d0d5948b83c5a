"""Miner keys: created on first use, kept in a keystore directory.

One Ed25519 key per miner name (by default the Flower node id), stored as
``miner-<name>.key`` (raw 32 bytes, mode 0600) with ``miner-<name>.pub`` (hex) beside
it for allow-lists. Creation is atomic, so concurrent ClientApps agree on one key.
"""

from __future__ import annotations

import os
from pathlib import Path

from pot_flower.zk.signatures import SigningKey

KEYSTORE_ENV = "POT_KEYSTORE"
DEFAULT_KEYSTORE = Path.home() / ".pot" / "keystore"


def default_keystore() -> Path:
    """``$POT_KEYSTORE`` or ``~/.pot/keystore``."""
    return Path(os.environ.get(KEYSTORE_ENV, DEFAULT_KEYSTORE))


class Keystore:
    """The miner keys in ``directory``."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else default_keystore()

    def miner_key(self, name: str) -> SigningKey:
        """The key for miner ``name``, generated and stored if it does not exist."""
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError(f"bad miner name {name!r}")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"miner-{name}.key"
        if not path.exists():
            key = SigningKey.generate()
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key.to_bytes())
            try:
                os.link(tmp, path)  # fails if another process won the race
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        raw = path.read_bytes()
        if len(raw) != 32:
            raise ValueError(f"{path} is not a 32-byte Ed25519 key")
        key = SigningKey.from_bytes(raw)
        pub = path.with_suffix(".pub")
        if not pub.exists():
            pub.write_text(key.verify_key.raw.hex() + "\n")
        return key
