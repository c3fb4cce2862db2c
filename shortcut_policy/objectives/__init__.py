"""Training objectives, each a loss plus its own sampler, chosen by name in the config."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .base import Denoiser, Objective
from .ddpm import DDPMConfig, DDPMObjective
from .flow_matching import FlowMatchingConfig, FlowMatchingObjective
from .meanflow import MeanFlowConfig, MeanFlowObjective
from .shortcut import ShortcutConfig, ShortcutObjective


@dataclass(frozen=True)
class ObjectiveEntry:
    """One plug-in objective: its options dataclass, its class (loss + sampler), and the options that
    change only how it samples, so that a trained checkpoint may act with other values
    (``evaluate ... sampling.timestep_spacing=trailing``)."""

    config: type
    objective: type
    sampling_options: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.objective.name

    def default_steps(self) -> list[int]:
        """The step budgets an evaluation sweeps by default: the objective's, with default options."""
        return self.objective(self.config()).valid_steps()


OBJECTIVES: dict[str, ObjectiveEntry] = {
    entry.name: entry
    for entry in (
        ObjectiveEntry(ShortcutConfig, ShortcutObjective, ("clip_sample", "cfg_scale", "cfg_min_steps")),
        ObjectiveEntry(MeanFlowConfig, MeanFlowObjective, ("clip_sample",)),
        ObjectiveEntry(FlowMatchingConfig, FlowMatchingObjective, ("clip_sample", "cfg_scale", "cfg_min_steps")),
        ObjectiveEntry(DDPMConfig, DDPMObjective, ("clip_sample", "timestep_spacing")),
    )
}


def sampling_options(name: Any) -> tuple[str, ...]:
    """The options of objective ``name`` that only sampling reads (none for an unknown name)."""
    return OBJECTIVES[name].sampling_options if name in OBJECTIVES else ()


def with_sampling(config: Mapping[str, Any], sampling: Mapping[str, Any] | None, field: str = "sampling") -> dict[str, Any]:
    """An objective's options (``config``, as a checkpoint stores them) with sampling-only options
    replaced by ``sampling``; any other key is refused, since the network was trained with it."""
    options = dict(config)
    if not sampling:
        return options
    name = options.get("name")
    allowed = sampling_options(name)
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
    config_cls, objective_cls = OBJECTIVES[name].config, OBJECTIVES[name].objective
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"objective ({name}): unknown options {unknown}; expected a subset of {sorted(known)}")
    return objective_cls(config_cls(**options))


def objective_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every option of its objective written out (its dataclass's defaults filled in), in JSON
    types: how checkpoints, saved-settings checks and the comparison's defaults state an objective."""
    options = json.loads(json.dumps(dataclasses.asdict(build_objective(config).config)))
    return {"name": config["name"], **options}


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
    "MeanFlowConfig",
    "MeanFlowObjective",
    "OBJECTIVES",
    "Objective",
    "ObjectiveEntry",
    "ShortcutConfig",
    "ShortcutObjective",
    "build_objective",
    "check_steps",
    "sampling_options",
    "with_sampling",
]
