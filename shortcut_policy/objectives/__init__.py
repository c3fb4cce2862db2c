"""Training objectives, each a loss plus its own sampler, chosen by name in the config."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from .base import Denoiser, Objective
from .ddpm import DDPMConfig, DDPMObjective
from .flow_matching import FlowMatchingConfig, FlowMatchingObjective
from .shortcut import ShortcutConfig, ShortcutObjective

# name -> (config dataclass, objective class)
OBJECTIVES: dict[str, tuple[type, type]] = {
    "shortcut": (ShortcutConfig, ShortcutObjective),
    "flow_matching": (FlowMatchingConfig, FlowMatchingObjective),
    "ddpm": (DDPMConfig, DDPMObjective),
}


# Options that change only how an objective samples, not what its network learned: a trained
# checkpoint may act with other values (``evaluate ... sampling.timestep_spacing=trailing``).
SAMPLING_OPTIONS: dict[str, tuple[str, ...]] = {
    "shortcut": ("clip_sample", "cfg_scale", "cfg_min_steps"),
    "flow_matching": ("clip_sample", "cfg_scale", "cfg_min_steps"),
    "ddpm": ("clip_sample", "timestep_spacing"),
}


def with_sampling(config: Mapping[str, Any], sampling: Mapping[str, Any] | None, field: str = "sampling") -> dict[str, Any]:
    """An objective's options (``config``, as a checkpoint stores them) with sampling-only options
    replaced by ``sampling``; any other key is refused, since the network was trained with it."""
    options = dict(config)
    if not sampling:
        return options
    name = options.get("name")
    allowed = SAMPLING_OPTIONS.get(name, ())
    for key in sampling:
        if key not in allowed:
            raise ValueError(
                f"{field}.{key}: expected a sampling option of the {name} objective ({', '.join(allowed)}), got {key!r}; "
                "its other options are fixed by training"
            )
    options.update(sampling)
    try:
        build_objective(options)
    except ValueError as err:
        raise ValueError(f"{field}: {err}") from None
    return options


def build_objective(config: Mapping[str, Any]) -> Objective:
    """Build an objective from ``{"name": ..., **options}``; options are validated by its dataclass."""
    options = dict(config)
    name = options.pop("name", None)
    if name not in OBJECTIVES:
        raise ValueError(f"objective.name: expected one of {sorted(OBJECTIVES)}, got {name!r}")
    config_cls, objective_cls = OBJECTIVES[name]
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"objective ({name}): unknown options {unknown}; expected a subset of {sorted(known)}")
    return objective_cls(config_cls(**options))


def check_steps(field: str, budgets: Iterable[int], objective: Objective) -> None:
    """One clear error naming the config ``field`` if ``objective`` cannot sample with one of ``budgets``:
    a command checks its step budgets before it trains or rolls out, not when it gets to them."""
    for steps in budgets:
        try:
            objective.validate_steps(steps)
        except ValueError as err:
            raise ValueError(f"{field}: {str(err).removeprefix('steps: ')}") from None  # err names the objective


__all__ = [
    "DDPMConfig",
    "DDPMObjective",
    "Denoiser",
    "FlowMatchingConfig",
    "FlowMatchingObjective",
    "OBJECTIVES",
    "Objective",
    "SAMPLING_OPTIONS",
    "ShortcutConfig",
    "ShortcutObjective",
    "build_objective",
    "check_steps",
    "with_sampling",
]
