"""The robust stage of round execution: deterministic Byzantine-robust rules.

Pure integer maths over fixed-point updates (see :mod:`.geometry`), identical on
every validator. :class:`RobustConfig` (fixed at genesis) names the rules;
:func:`robust_aggregate` applies them to a round's accepted updates.
"""

from pot_flower.protocol.robust.config import (
    PRESETS,
    Aggregator,
    PreAggregator,
    RobustConfig,
    parse_aggregator,
    parse_pre_aggregators,
    robust_settings,
)
from pot_flower.protocol.robust.pipeline import RobustResult, robust_aggregate

__all__ = [
    "PRESETS",
    "Aggregator",
    "PreAggregator",
    "RobustConfig",
    "RobustResult",
    "parse_aggregator",
    "parse_pre_aggregators",
    "robust_aggregate",
    "robust_settings",
]
