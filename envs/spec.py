"""The environment contract: what every environment fills in so that demos, training, rollouts and reports
can use it without knowing its name.

An environment is a folder under ``envs/`` whose ``__init__.py`` builds one :class:`EnvSpec` and calls
``register_env``; nothing generic changes when one is added.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import gymnasium as gym
import numpy as np

from ..features import ObsSpec
from ..utils.checks import at_least, check_workers

_VARIED = {"obs", "action_dim", "max_episode_steps"}  # what a task or an env option may change in a spec


class Expert(Protocol):
    """A scripted demonstrator. ``reset(seed)`` starts an episode (its own choices reseeded when a seed is
    given); ``act(obs, env)`` returns the env's next action. ``env`` is the env as ``make`` built it, so a
    privileged expert may read the simulator through ``env.unwrapped``."""

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: Mapping[str, np.ndarray], env: gym.Env) -> np.ndarray: ...


class DemoRecorder(Protocol):
    """How an env's expert demonstrations reach their store when not written straight into it (robosuite:
    through a robomimic file, as a user's would). ``generate_demos`` makes the expert's env with
    ``make_options``, adds ``step_data(env)`` to each recorded step, and hands the kept episodes (dicts of
    per-step arrays: the observation keys, ``action`` and the step data) to ``finish``, which returns the
    store's contents; ``files(out)`` are what ``finish`` writes beside the store ``out``."""

    make_options: Mapping[str, Any]

    def step_data(self, env: gym.Env) -> Mapping[str, np.ndarray]: ...

    def files(self, out: Path) -> list[Path]: ...

    def finish(self, spec: "EnvSpec", env: gym.Env, episodes: list[dict[str, np.ndarray]], out: Path, keys: list[str],
               overwrite: bool, progress: bool) -> Any: ...


def success_flag(key: str) -> Callable[[Mapping[str, Any]], bool]:
    """``info[key]`` as a success flag (missing: not yet successful)."""

    def success(info: Mapping[str, Any]) -> bool:
        return bool(info.get(key, False))

    return success


@dataclass(frozen=True)
class EnvSpec:
    """What the library needs to know about an environment, and how to make it.

    ``make(obs_keys=(), image_size=None, render_size=None, max_episode_steps=None)`` (and ``task=`` for an
    env with ``tasks``) returns a gymnasium env whose observations
    are dicts holding at least ``obs_keys`` (each as ``obs[key]`` describes it; rgb keys at
    ``image_size`` pixels square when that is set), whose ``reset(seed=s)`` starts the same episode for
    the same ``s``, whose actions are ``(action_dim,)`` float arrays, and whose ``render()`` gives RGB
    frames ``render_size`` pixels square when that is set (``None``: the env's own sizes), and whose
    episodes are cut at ``max_episode_steps`` (``None``: the env's own limit).

    An env with several ``tasks`` (Meta-World's 50) is one spec; ``configure(task=...)`` gives the spec
    of one task, whose ``make`` and ``make_expert`` are bound to it (what generic code then uses).
    """

    name: str
    make: Callable[..., gym.Env]
    obs: Mapping[str, ObsSpec]  # every key the env's observation dict can hold
    action_dim: int
    max_episode_steps: int
    success: Callable[[Mapping[str, Any]], bool]  # from a step's info
    default_obs_keys: tuple[str, ...]  # what a policy observes unless env.obs_keys says otherwise
    # an episode's score is the max over its steps of step_score(reward, info); None: the success flag
    step_score: Callable[[float, Mapping[str, Any]], float] | None = None
    score_name: str = "success rate"  # how reports label the episode score
    score_range: tuple[float, float] = (0.0, 1.0)
    make_expert: Callable[[int | None], Expert] | None = None  # scripted demonstrator, if any
    demo_keys: tuple[str, ...] = ()  # low-dim keys a demonstration store records (rgb ones when asked)
    # rollouts step their episodes in this many worker processes (0: all in this process); an env
    # whose step or render is slow gains from workers, a fast one loses to the messages
    rollout_workers: int = 0
    # environments a rollout keeps alive at once at most (0: one per test seed); an env whose instances
    # hold much memory (robosuite with cameras: a renderer each) caps it
    rollout_envs: int = 0
    tasks: tuple[str, ...] = ()  # the env's tasks, when it has several; make(task=...) builds one
    default_task: str | None = None
    task_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # e.g. difficulty -> tasks, for reports
    task: str | None = None  # set by configure(): the task this spec's make and make_expert build
    expert_options: Mapping[str, Any] = field(default_factory=dict)  # set by configure(): bound into make_expert
    options: Mapping[str, Any] = field(default_factory=dict)  # set by configure(): keyword options bound into make
    # (task, options) -> the fields above that depend on them, e.g. an observation's size per task, or the
    # action's when an option changes the controller (robosuite: absolute actions)
    variant: Callable[[str | None, Mapping[str, Any]], Mapping[str, Any]] | None = None
    # (a recorded file's env_args, env options) -> a converter (states (T, S), recorded actions (T, A)) ->
    # the actions the options ask for (robosuite: absolute ones, its controller computes them), or None when
    # they are the recorded ones; import_robomimic's abs_action and the expert's demonstrations use it
    make_action_converter: Callable[[Mapping[str, Any], Mapping[str, Any]], Callable[[np.ndarray, np.ndarray], np.ndarray] | None] | None = None
    # how the expert's demonstrations reach their store when not written straight into it; None: directly
    demo_recorder: DemoRecorder | None = None
    # (a store's attributes, task, env options) -> raises ValueError naming the field when the store was
    # recorded in a setup this env cannot reproduce (robosuite: another task, robot, controller or rate)
    check_store: Callable[[Mapping[str, Any], str | None, Mapping[str, Any]], None] | None = None
    # the rate its actions are applied at, as on a robot: a clocked evaluation turns an inference's latency into
    # control ticks with it (None: not declared, and such an evaluation is refused)
    control_hz: float | None = None
    requires: tuple[str, ...] = ()  # modules the env imports (an optional extra), checked before any work
    install_hint: str = ""  # the command that installs them

    def __post_init__(self) -> None:
        if not self.obs:
            raise ValueError(f"EnvSpec({self.name}).obs: expected at least one observation key")
        if not self.default_obs_keys:
            raise ValueError(f"EnvSpec({self.name}).default_obs_keys: expected at least one observation key")
        self.check_obs_keys(self.default_obs_keys)
        for key in self.demo_keys:
            if key not in self.obs or self.obs[key].type != "low_dim":
                raise ValueError(f"EnvSpec({self.name}).demo_keys: {key!r} is not a low_dim observation of the env")
        at_least(f"EnvSpec({self.name})", self, 1, "action_dim", "max_episode_steps")
        check_workers(self.rollout_workers, f"EnvSpec({self.name}).rollout_workers")
        at_least(f"EnvSpec({self.name})", self, 0, "rollout_envs")
        if self.control_hz is not None and not (isinstance(self.control_hz, (int, float)) and 0 < self.control_hz < 10_000):
            raise ValueError(f"EnvSpec({self.name}).control_hz: expected a rate in Hz in (0, 10000), got {self.control_hz!r}")
        low, high = self.score_range
        if not low < high:
            raise ValueError(f"EnvSpec({self.name}).score_range: expected (low, high) with low < high, got {self.score_range}")
        if self.tasks and self.default_task not in self.tasks:
            raise ValueError(f"EnvSpec({self.name}).default_task: expected one of its tasks, got {self.default_task!r}")
        for group, members in self.task_groups.items():
            if set(members) - set(self.tasks):
                raise ValueError(f"EnvSpec({self.name}).task_groups[{group!r}]: {sorted(set(members) - set(self.tasks))} are not tasks of the env")

    @property
    def id(self) -> str:
        """The env and its task, as names of files and titles say it: ``push_t``, ``metaworld_push-v3``."""
        return self.name if self.task is None else f"{self.name}_{self.task}"

    @property
    def label(self) -> str:
        """The env, its task, its options and its expert's, as plot titles say it: ``push_t (expert
        route_tie_ratio=3.0)``. The options tell apart runs on one env that differ in what its store
        name holds too: the env's options (``absolute_actions=True``) and its expert's (``env=push_t_multimodal``)."""
        said = lambda options: ", ".join(f"{key}={value}" for key, value in sorted(options.items()))  # noqa: E731
        parts = [said(self.options), f"expert {said(self.expert_options)}" if self.expert_options else ""]
        options = "; ".join(part for part in parts if part)
        return f"{self.id} ({options})" if options else self.id

    def check_task(self, task: str | None) -> None:
        if task is not None and not self.tasks:
            raise ValueError(f"env.task: the {self.name} env has no tasks to choose from, got {task!r} (leave it null)")
        if task is not None and task not in self.tasks:
            raise ValueError(f"env.task: expected one of the {self.name} env's tasks {list(self.tasks)}, got {task!r}")

    def check_installed(self) -> None:
        """Refuse at once, with the command that fixes it, an env whose simulator is not installed."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise ModuleNotFoundError(f"env.name={self.name} needs {', '.join(missing)}, which is not installed: {self.install_hint}")

    def configure(
        self, task: str | None = None, max_episode_steps: int | None = None, expert_options: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> "EnvSpec":
        """This env with one task (``None``: the default one) and episode length (``None``: the env's own);
        its ``make`` and ``make_expert`` build that task, the expert with ``expert_options`` (keyword options
        of the env's scripted expert, such as how often it picks among near-equal plans), the env with
        ``options`` (keyword options of its ``make``). A module-level ``make`` stays picklable (rollout workers)."""
        self.check_task(task)
        if expert_options is not None and not isinstance(expert_options, Mapping):
            raise ValueError(f"env.expert_options: expected a mapping of option names to values, got {expert_options!r}")
        if options is not None and not isinstance(options, Mapping):
            raise ValueError(f"env.options: expected a mapping of option names to values, got {options!r}")
        expert_options = dict(expert_options or {})
        options = dict(options or {})
        if options:
            reserved = sorted(set(options) & {"task", "obs_keys", "image_size", "render_size", "max_episode_steps"})
            if reserved:
                raise ValueError(f"env.options: {reserved} are set by the library (env.task, env.obs_keys, ...), not as options")
            signature = inspect.signature(self.make)
            params = signature.parameters
            try:
                signature.bind_partial(**options)
            except TypeError as err:
                raise ValueError(f"env.options: the {self.name} env does not take {options} ({err})") from None
            for key, value in options.items():
                default = params[key].default if key in params else inspect.Parameter.empty
                if default is inspect.Parameter.empty or default is None:
                    continue
                if type(value) is not type(default) and not (isinstance(default, float) and type(value) is int):
                    raise ValueError(f"env.options.{key}: expected a {type(default).__name__} (default {default!r}), got {value!r}")
            # an option at its default is no option: the store's name and provenance do not depend on spelling it
            options = {k: v for k, v in options.items() if k not in params or params[k].default != v}
        if expert_options and self.make_expert is None:
            raise ValueError(f"env.expert_options: the {self.name} env has no scripted expert, got {expert_options}")
        if self.task is not None:
            raise ValueError(f"EnvSpec({self.id}).configure: already configured")
        task = task if task is not None else self.default_task
        varied = dict(self.variant(task, options)) if self.variant is not None else {}
        if set(varied) - _VARIED:
            raise ValueError(f"EnvSpec({self.name}).variant: may set {sorted(_VARIED)}, got {sorted(set(varied) - _VARIED)}")
        own_steps = varied.pop("max_episode_steps", self.max_episode_steps)
        if max_episode_steps is not None and (isinstance(max_episode_steps, bool) or max_episode_steps < 1):
            raise ValueError(f"env.max_episode_steps: expected an integer >= 1 (or null: the env's {own_steps}), got {max_episode_steps}")
        bound = {"task": task} if task is not None else {}
        steps = {"max_episode_steps": max_episode_steps} if max_episode_steps is not None else {}
        if not bound and not steps and not expert_options and not options and not varied:
            return self
        expert = self.make_expert
        if expert is not None and (bound or expert_options):
            expert = functools.partial(expert, **bound, **expert_options)
            if expert_options:
                try:
                    expert(None)  # unknown options fail now, not after the first demonstration
                except TypeError as err:
                    raise ValueError(f"env.expert_options: the {self.name} expert does not take {expert_options} ({err})") from None
        return dataclasses.replace(
            self,
            **varied,
            make=functools.partial(self.make, **bound, **steps, **options),
            make_expert=expert,
            max_episode_steps=max_episode_steps or own_steps,
            task=task,
            expert_options=expert_options,
            options=options,
        )

    @property
    def obs_shapes(self) -> dict[str, tuple[int, ...]]:
        return {key: spec.shape for key, spec in self.obs.items()}

    def check_obs_keys(self, keys: Iterable[str]) -> None:
        """Refuse observation keys this env's observation dict does not hold."""
        for key in keys:
            if key not in self.obs:
                raise ValueError(f"env.obs_keys: {key!r} is not an observation of {self.name} ({sorted(self.obs)})")

    def rgb_keys(self, keys: Iterable[str]) -> list[str]:
        return [key for key in keys if self.obs[key].type == "rgb"]

    def record_keys(self, obs_keys: Sequence[str]) -> list[str]:
        """The observation keys a demonstration store for a policy observing ``obs_keys`` records: the
        env's ``demo_keys`` (all low-dim keys when unset) and the requested rgb keys."""
        low_dim = list(self.demo_keys) or [k for k, s in self.obs.items() if s.type == "low_dim"]
        return low_dim + [k for k in self.rgb_keys(obs_keys) if k not in low_dim]

    def score(self, reward: float, info: Mapping[str, Any]) -> float:
        """One step's contribution to the episode score (the episode's is the max over its steps)."""
        return float(self.step_score(reward, info)) if self.step_score else float(self.success(info))
