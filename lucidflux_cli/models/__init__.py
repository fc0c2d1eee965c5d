"""LucidFlux's own modules. They compute; they know nothing about files."""

from lucidflux_cli.models.dual_branch import DualConditionBranch
from lucidflux_cli.models.modulation import LayerAdaptiveModulation

__all__ = ["DualConditionBranch", "LayerAdaptiveModulation"]
