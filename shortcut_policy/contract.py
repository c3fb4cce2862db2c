"""The policy's contract: its typed inputs and outputs, and the choices that build its network.

A trained policy is used far from where it was trained: on a robot's computer, where neither the
environment that made its data nor the run's config exists. So the checkpoint carries this contract
and nothing else is needed to load and act:

* each observation key with its per-frame shape and kind (``low_dim`` or ``rgb``), in the order the
  encoder concatenates them (Diffusion Policy's ``shape_meta``, LeRobot's input features);
* the action key and size;
* the network's options (``PolicyConfig``: backbone, horizon, ``n_obs_steps``, ``n_action_steps``,
  image encoder, embedding scale) and the objective's config (how it samples).

The run's whole config (env, data, training budget) travels beside it as provenance only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from omegaconf.errors import OmegaConfBaseException

from .config import PolicyConfig, as_trained, load_config
from .features import ObsSpec, stored_layout_type
from .objectives import OBJECTIVES, objective_options
from .utils.cli import describe


@dataclass
class PolicyContract:
    """What a policy takes and gives, and how its network and sampler are built (see the module docstring).

    ``objective`` is the objective's config (``{"name": ..., options}``), stored with every option written out.
    """

    obs: dict[str, ObsSpec]
    action_key: str
    action_dim: int
    policy: PolicyConfig
    objective: dict[str, Any]

    def __post_init__(self) -> None:
        if not self.obs:
            raise ValueError("contract.obs: expected at least one observation key, got none")
        for key, spec in self.obs.items():
            if not isinstance(key, str) or not isinstance(spec, ObsSpec):
                raise ValueError(f"contract.obs: expected observation names mapped to ObsSpec, got {key!r}: {spec!r}")
        if not isinstance(self.action_key, str) or not self.action_key:
            raise ValueError(f"contract.action_key: expected a non-empty name, got {self.action_key!r}")
        if isinstance(self.action_dim, bool) or not isinstance(self.action_dim, int) or self.action_dim < 1:
            raise ValueError(f"contract.action_dim: expected an integer >= 1, got {self.action_dim!r}")
        if not isinstance(self.policy, PolicyConfig):
            raise ValueError(f"contract.policy: expected a PolicyConfig (the network's options), got {type(self.policy).__name__}")
        # every option written out, so that the policy samples as trained whatever the defaults become
        self.objective = spelled_out(self.objective)

    # ------------------------------------------------------------------ views
    @property
    def obs_keys(self) -> list[str]:
        return list(self.obs)

    @property
    def obs_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: spec.shape for k, spec in self.obs.items()}

    @property
    def cameras(self) -> list[str]:
        return [k for k, spec in self.obs.items() if spec.type == "rgb"]

    @property
    def horizon(self) -> int:
        return self.policy.horizon

    @property
    def n_obs_steps(self) -> int:
        return self.policy.n_obs_steps

    @property
    def n_action_steps(self) -> int:
        return self.policy.n_action_steps

    # ---------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "obs": {k: {"shape": list(spec.shape), "type": spec.type} for k, spec in self.obs.items()},
            "action": {"key": self.action_key, "dim": self.action_dim},
            "policy": dataclasses.asdict(self.policy),
            "objective": dict(self.objective),
        }

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> "PolicyContract":
        """Read a contract as ``to_dict`` wrote it; an option added to ``PolicyConfig`` since takes the value
        it was trained with (``config.as_trained``), else its default. Raises ValueError naming the field."""
        if not isinstance(saved, Mapping):
            raise ValueError(f"contract: expected an object, got {type(saved).__name__}")
        missing = [k for k in ("obs", "action", "policy", "objective") if k not in saved]
        if missing:
            raise ValueError(f"contract: expected the fields obs, action, policy and objective, got no {missing}")
        obs = saved["obs"]
        if not isinstance(obs, Mapping):
            raise ValueError(f"contract.obs: expected an object of observation keys, got {obs!r}")
        features = {}
        for key, spec in obs.items():
            if not isinstance(spec, Mapping) or set(spec) != {"shape", "type"}:
                raise ValueError(f"contract.obs.{key}: expected {{shape, type}}, got {spec!r}")
            try:
                features[key] = ObsSpec(tuple(spec["shape"]) if isinstance(spec["shape"], list) else spec["shape"], spec["type"])
            except ValueError as err:
                raise ValueError(f"contract.obs.{key}: {err}") from None
        action = saved["action"]
        if not isinstance(action, Mapping) or set(action) != {"key", "dim"}:
            raise ValueError(f"contract.action: expected {{key, dim}}, got {action!r}")
        return cls(features, action["key"], action["dim"], read_policy(saved["policy"]), saved["objective"])

    @classmethod
    def from_run_config(cls, run: Mapping[str, Any], obs_shapes: Mapping[str, Sequence[int]], action_dim: int) -> "PolicyContract":
        """The contract of a checkpoint written before contracts (its run config, shapes and action size):
        keys are typed by their rank, as that network was built; no environment is consulted."""
        run = as_trained(dict(run))
        env = run.get("env") or {}
        keys = env.get("obs_keys")
        if not keys or any(k not in obs_shapes for k in keys):
            raise ValueError(f"config.env.obs_keys: expected keys with saved shapes {sorted(obs_shapes)}, got {keys!r}")
        features = {k: ObsSpec(tuple(obs_shapes[k]), stored_layout_type(obs_shapes[k])) for k in keys}
        # its objective's unsaved options take today's defaults, as that layout was loaded; spelled out from now on
        return cls(features, env.get("action_key", "action"), int(action_dim), read_policy(run.get("policy") or {}),
                   run.get("objective"))


def read_policy(saved: Any) -> PolicyConfig:
    """A saved ``PolicyConfig`` (an option added since takes the value it was trained with, else its default)."""
    if not isinstance(saved, Mapping):
        raise ValueError(f"contract.policy: expected the network's options, got {saved!r}")
    try:
        return load_config(as_trained({"policy": dict(saved)})["policy"], PolicyConfig)
    except (ValueError, TypeError, OmegaConfBaseException) as err:
        raise ValueError(f"contract.policy: {describe(err)}") from None


def spelled_out(objective: Any) -> dict[str, Any]:
    """An objective config with every option written out (its dataclass's defaults filled in), checked."""
    if not isinstance(objective, Mapping) or objective.get("name") not in OBJECTIVES:
        raise ValueError(f"contract.objective: expected an objective config named one of {sorted(OBJECTIVES)}, got {objective!r}")
    try:
        return objective_options(objective)
    except (ValueError, TypeError) as err:
        raise ValueError(f"contract.objective: {err}") from None

