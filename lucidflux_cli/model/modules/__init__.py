"""LucidFlux's own modules. They compute; they know nothing about files."""

from lucidflux_cli.model.modules.dual_branch import DualConditionBranch
from lucidflux_cli.model.modules.modulation import LayerAdaptiveModulation

__all__ = ["DualConditionBranch", "LayerAdaptiveModulation"]
