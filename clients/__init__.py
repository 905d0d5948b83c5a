"""Client side: Flower mods and wrappers that turn any ClientApp into a PoT miner."""

from pot_flower.clients.attack import DEMO_ATTACKS, demo_attack_mod
from pot_flower.clients.keras_weights import (
    keras_arrays,
    keras_names,
    load_keras_arrays,
)
from pot_flower.clients.keystore import Keystore
from pot_flower.clients.pot_mod import pot_mod
from pot_flower.clients.privacy import DpSgd
from pot_flower.clients.wrap import PoTClientApp, with_pot

__all__ = [
    "DEMO_ATTACKS",
    "DpSgd",
    "Keystore",
    "PoTClientApp",
    "demo_attack_mod",
    "keras_arrays",
    "keras_names",
    "load_keras_arrays",
    "pot_mod",
    "with_pot",
]
