"""Client side: Flower mods and wrappers that turn any ClientApp into a PoT miner."""

from pot_flower.clients.keystore import Keystore
from pot_flower.clients.pot_mod import pot_mod
from pot_flower.clients.wrap import PoTClientApp, with_pot

__all__ = ["Keystore", "PoTClientApp", "pot_mod", "with_pot"]
