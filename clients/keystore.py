"""Miner keys (re-exported: the format's owner is :mod:`pot_flower.keystore`)."""

from pot_flower.keystore import (
    DEFAULT_KEYSTORE,
    KEYSTORE_ENV,
    Keystore,
    default_keystore,
)

__all__ = ["DEFAULT_KEYSTORE", "KEYSTORE_ENV", "Keystore", "default_keystore"]
