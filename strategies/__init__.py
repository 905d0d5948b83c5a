"""Flower strategies: PoTStrategy (the committee replaces Flower's single server)."""

from pot_flower.strategies.pot_strategy import PoTStrategy, RoundReport

__all__ = ["PoTStrategy", "RoundReport"]
