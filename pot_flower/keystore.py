"""Miner keys: created on first use, kept in a keystore directory.

One Ed25519 key per miner name (by default the Flower node id; ``partition-<i>``
with ``pot-miner-name = "partition-id"``), stored as ``miner-<name>.key`` (raw 32
bytes, mode 0600) with ``miner-<name>.pub`` (hex) beside it for allow-lists.
Creation is atomic, so concurrent ClientApps agree on one key. The miners' side
(``pot_mod``) and the operator's (``pot keys miners``) share this module.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

from pot_flower.zk.signatures import SigningKey

KEYSTORE_ENV = "POT_KEYSTORE"
MINER_NAMES = ("node-id", "partition-id")
"""How ``pot-miner-name`` names a node's key (see :func:`miner_name`)."""
DEFAULT_KEYSTORE = Path.home() / ".pot" / "keystore"

_LOADED = 4096
"""Keys a process remembers (a simulation actor serves many miners a round)."""
_loaded: OrderedDict[Path, tuple[tuple[int, int, int], SigningKey]] = OrderedDict()
_lock = threading.Lock()


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
        path = self.directory / f"miner-{name}.key"
        known = _remembered(path)
        if known is not None:
            return known
        self.directory.mkdir(parents=True, exist_ok=True)
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
        _remember(path, key)
        return key


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _remembered(path: Path) -> SigningKey | None:
    """The key loaded from ``path`` before, if the file is still that one.

    Reading and checking a key file each round cost ~0.5 ms a miner; a file
    replaced or rewritten since (inode, mtime or size) is read again.
    """
    identity = _identity(path)
    with _lock:
        entry = _loaded.get(path)
        if entry is None or identity is None or entry[0] != identity:
            return None
        _loaded.move_to_end(path)
        return entry[1]


def _remember(path: Path, key: SigningKey) -> None:
    identity = _identity(path)
    if identity is None:
        return
    with _lock:
        _loaded[path] = (identity, key)
        _loaded.move_to_end(path)
        while len(_loaded) > _LOADED:
            _loaded.popitem(last=False)


def miner_name(how: str, node_id: int, node_config: dict[str, object]) -> str:
    """The key name of a node: its Flower node id, or ``partition-<i>``.

    Node ids are drawn afresh by every simulation; partition ids are the
    operator's (``--node-config partition-id=i`` on a SuperNode, and ``0..N-1`` in
    simulation), so keys named by them can be created and allow-listed before a
    run (``pot keys miners``).
    """
    if how == "node-id":
        return str(node_id)
    if how == "partition-id":
        pid = node_config.get("partition-id")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
            raise ValueError(
                'pot-miner-name = "partition-id" needs a node config '
                f"partition-id >= 0, got {pid!r}"
            )
        return f"partition-{pid}"
    raise ValueError(f"pot-miner-name must be one of {', '.join(MINER_NAMES)}")
