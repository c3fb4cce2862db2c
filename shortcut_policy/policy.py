"""The one policy class: observation history in, actions out, whatever backbone or objective made it.

``act`` is cheap to call every control tick: it keeps the last ``n_obs_steps`` observations and a
queue of the predicted chunk, and runs the network only when the queue is empty (every
``n_action_steps`` calls), as Diffusion Policy and LeRobot do. Given a batch of observations it keeps
one history and one queue per row and replans the rows whose queue ran dry in one batched call: the
rollouts that evaluate a policy step their episodes through this same ``act``.

A policy is its contract (``contract.py``: typed inputs and outputs, network and objective options),
its weights and its normalizer; ``load_policy`` needs nothing else, not the environment nor the run's
config (kept in ``policy.meta`` as provenance).
"""

from __future__ import annotations

import collections
import contextlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from omegaconf.errors import OmegaConfBaseException

from .checkpoint import POLICY_FILE, check_finite, load_tensors, mismatch_detail, prefixed, resolve_checkpoint, save_tensors, unprefixed
from .contract import PolicyContract
from .cuda_graph import GraphedSampler
from .data.normalizer import MinMaxNormalizer
from .deadline import BudgetPicker, check_deadline
from .models.network import ChunkDenoiser, build_network
from .objectives import Objective, build_objective, with_sampling
from .utils.device import resolve_device


@dataclass
class _Row:
    """One control loop's state: its last observation frames and the actions still queued from its chunk."""

    history: collections.deque
    queue: collections.deque = field(default_factory=collections.deque)
    # temporal ensembling: the chunks planned so far that still hold an action for this tick, oldest first,
    # each as [its actions from the tick it was planned at (n, A), ticks since]
    planned: list = field(default_factory=list)


class Policy:
    """A trained network, its normalizer and the objective's sampler, behind ``act`` and ``predict_chunk``."""

    def __init__(
        self,
        network: ChunkDenoiser,
        normalizer: MinMaxNormalizer,
        objective: Objective,
        contract: PolicyContract,
        device: str | torch.device = "cpu",
        cuda_graph: bool | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(contract, PolicyContract):
            raise TypeError(f"contract: expected a PolicyContract (contract.py: the observation features, the action, the "
                            f"network's and objective's options), got {type(contract).__name__}")
        self.device = resolve_device(str(device))
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph: CUDA graphs need a CUDA device, got device {self.device} (leave cuda_graph unset)")
        # replanning at batch 1 on a GPU replays a CUDA graph captured per step budget (cuda_graph.py); False: eager
        self.cuda_graph = self.device.type == "cuda" if cuda_graph is None else bool(cuda_graph)
        self._graphs: dict[tuple[int, int], Any] = {}
        self.network = network.to(self.device).eval().requires_grad_(False)
        self.normalizer = normalizer.to(self.device)
        self.objective = objective
        self.contract = contract
        self.meta = dict(meta or {})  # provenance: the run config it was trained with ("config"), its data, ...
        self.obs_keys = contract.obs_keys
        self.obs_shapes = contract.obs_shapes
        self.action_dim = contract.action_dim
        self.horizon = contract.horizon
        self.n_obs_steps = contract.n_obs_steps
        self.n_action_steps = contract.n_action_steps
        self._rows: dict[int, _Row] = {}
        self._generator: torch.Generator | None = None
        # act(deadline_ms=...) picks among the objective's budgets by measured replanning time (deadline.py)
        self.budget = BudgetPicker(objective.valid_steps())
        self.last_steps: int | None = None  # the step budget of the last replanning call
        self._ensemble: float | None = None

    @property
    def temporal_ensemble(self) -> float | None:
        """ACT's temporal ensembling: None (the default) executes each chunk's ``n_action_steps`` actions in turn;
        a decay m >= 0 replans at every tick and executes the weighted mean of every planned chunk's action
        for this tick, the i-th oldest weighted exp(-m i) (0: all alike). Smoother, at a replan per tick."""
        return self._ensemble

    @temporal_ensemble.setter
    def temporal_ensemble(self, decay: float | None) -> None:
        if decay is not None and (isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 100):
            raise ValueError(f"temporal_ensemble: expected None (off) or a decay m in [0, 100) (weights exp(-m i)), got {decay!r}")
        self._ensemble = None if decay is None else float(decay)
        self._rows.clear()  # queues and plans of the other way of executing do not carry over

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, device: str = "cpu", sampling: Mapping[str, Any] | None = None,
        cuda_graph: bool | None = None,
    ) -> "Policy":
        """Load a ``policy.safetensors`` (or a run folder holding one).

        ``sampling`` replaces sampling-only options of the stored objective (``OBJECTIVES[name].sampling_options``,
        e.g. ``{"timestep_spacing": "leading"}`` for a DDPM checkpoint); the policy's contract records them.
        ``cuda_graph``: replan through CUDA graphs (default: on a CUDA device; False turns them off)."""
        file = resolve_checkpoint(path, POLICY_FILE)
        tensors, meta = load_tensors(file)
        check_finite(file, tensors)
        contract = read_contract(file, meta)
        contract.objective = with_sampling(contract.objective, sampling)
        try:
            objective = build_objective(contract.objective)
            network = build_network(contract.policy, contract.obs, contract.action_dim)
            network.load_state_dict(unprefixed("net", tensors), strict=True)
            normalizer = MinMaxNormalizer.from_state_dict(unprefixed("normalizer", tensors))
        except (ValueError, TypeError, KeyError, RuntimeError, AttributeError) as err:
            # an edited contract no longer matches the weights beside it (load_state_dict's size mismatches)
            raise ValueError(f"checkpoint {file}: its contract and weights do not fit together ({mismatch_detail(err)})") from err
        provenance = {k: v for k, v in meta.items() if k not in ("contract", "obs_shapes", "action_dim", "objective")}
        return cls(network, normalizer, objective, contract, device, cuda_graph, provenance)

    def save(self, path: str | os.PathLike, extra_meta: Mapping[str, Any] | None = None) -> Path:
        """Write this policy as one safetensors file (weights, normalizer, contract, provenance), atomically."""
        return save_policy(path, self.network, self.normalizer, self.contract, {**self.meta, **(extra_meta or {})})

    @property
    def config(self) -> Any:
        raise AttributeError("Policy.config: a policy is its contract now: policy.contract (observations, action, network "
                             "and objective options); the run config it was trained with is policy.meta['config']")

    # ---------------------------------------------------------------- control
    @contextlib.contextmanager
    def separate_control(self, seed: int) -> Iterator[None]:
        """A control state of its own for a batch of episodes (a rollout): no row has a history or a queue and
        the noise is seeded with ``seed``; the caller's rows and noise generator come back afterwards."""
        rows, generator = self._rows, self._generator
        self._rows, self._generator = {}, torch.Generator().manual_seed(seed)
        try:
            yield
        finally:
            self._rows, self._generator = rows, generator

    def reset(self, seed: int | None = None, rows: Sequence[int] | None = None) -> None:
        """Forget the observation history and the queued actions: of every row (call at every episode
        start), or of ``rows`` only (a batched caller whose episodes end at different ticks). ``seed``
        reseeds the sampler's noise, which all rows draw from in turn (None: keep it; unseeded, torch's
        global generator)."""
        if rows is None:
            self._rows.clear()
        else:
            for row in _check_rows(rows):
                self._rows.pop(row, None)
        if seed is not None:
            self._generator = torch.Generator().manual_seed(seed)

    @property
    def will_replan(self) -> bool:
        """True when the next unbatched ``act`` call runs the network (row 0's action queue is empty)."""
        return self.will_replan_rows([0])[0]

    def will_replan_rows(self, rows: Sequence[int]) -> list[bool]:
        """For each control loop in ``rows``: whether its next ``act`` call starts a new chunk (its queue is empty)."""
        return [self._ensemble is not None or r not in self._rows or not self._rows[r].queue for r in rows]

    def act(
        self,
        obs: Mapping[str, Any] | np.ndarray,
        steps: int | None = None,
        rows: Sequence[int] | None = None,
        deadline_ms: float | None = None,
    ) -> np.ndarray:
        """The next action for a raw environment observation, replanning when the queue is empty.

        One observation (each key at its per-frame shape, or a bare array for a one-key policy) gives
        one action (action_dim,). A batch (each key (B, *shape)) gives (B, action_dim), one per control
        loop: row i of the batch is loop ``rows[i]`` (default: i), with its own history and queue; the
        rows whose queue is empty replan together, in the order given, in one network call.

        ``steps`` fixes the number of sampling steps (default 1). ``deadline_ms`` instead lets the policy
        pick, at each replanning call, the largest budget whose recent replanning time (p95, measured on
        this machine at this batch size) fits the deadline, 1 step when none does (``self.budget``,
        deadline.py); the first call measures the budgets it may use, so make it before the control loop
        starts. ``last_steps`` says what the last replanning call used.
        """
        if deadline_ms is not None:
            if steps is not None:
                raise ValueError(f"steps, deadline_ms: give one of them (steps fixes the budget, deadline_ms lets the policy "
                                 f"pick it), got steps={steps!r} and deadline_ms={deadline_ms!r}")
            check_deadline(deadline_ms)
        else:
            steps = 1 if steps is None else steps
            self.objective.validate_steps(steps)
        frames, batched = self._validate_obs(obs)  # key -> (B, *shape), this call's own copy
        n = len(frames[self.obs_keys[0]])
        rows = list(range(n)) if rows is None else _check_rows(rows, n)
        replan = []
        for i, r in enumerate(rows):
            row = self._rows.setdefault(r, _Row(collections.deque(maxlen=self.n_obs_steps)))
            frame = {k: v[i] for k, v in frames.items()}
            row.history.extend([frame] * (self.n_obs_steps if not row.history else 1))  # pad the start with the first frame
            if not row.queue or self._ensemble is not None:
                replan.append(r)
        if replan:
            batch = {k: np.stack([np.stack([f[k] for f in self._rows[r].history]) for r in replan]) for k in self.obs_keys}
            try:
                if deadline_ms is not None:  # measuring a budget draws its own noise, not the rows'
                    measuring = torch.Generator().manual_seed(0)
                    steps = self.budget.choose(deadline_ms, len(replan), lambda k: self.predict_chunk(
                        batch, steps=k, generator=measuring, validate=False))
                start = self.budget.clock()
                chunks = self.predict_chunk(batch, steps=steps, validate=False, full=self._ensemble is not None)
            except FloatingPointError as err:  # its batch rows are the replanning rows, in this order
                raise FloatingPointError(f"{err} (batch row i is the control loop rows={replan}[i])") from None
            self.budget.record(steps, len(replan), (self.budget.clock() - start) * 1e3)  # every replan keeps the timings current
            self.last_steps = steps
            for r, chunk in zip(replan, chunks):
                if self._ensemble is None:
                    self._rows[r].queue.extend(chunk)  # (Ta, A)
                else:
                    self._rows[r].planned.append([chunk[self.n_obs_steps - 1 :], 0])  # from the tick it was planned at
        if self._ensemble is not None:
            actions = np.stack([self._ensembled(self._rows[r]) for r in rows])
        else:
            actions = np.stack([self._rows[r].queue.popleft() for r in rows])
        return actions if batched else actions[0]

    def _ensembled(self, row: _Row) -> np.ndarray:
        """This tick's action of every chunk planned for it, averaged with weights exp(-m i), i = 0 the oldest
        (ACT's temporal ensembling); then every plan is a tick older, and those with no action left are dropped."""
        actions = np.stack([plan[0][plan[1]] for plan in row.planned])  # (n, A), oldest first
        weights = np.exp(-self._ensemble * np.arange(len(actions)))
        action = (weights[:, None] * actions).sum(0) / weights.sum()
        for plan in row.planned:
            plan[1] += 1
        row.planned = [plan for plan in row.planned if plan[1] < len(plan[0])]
        return action.astype(actions.dtype)

    @torch.inference_mode()
    def predict_chunk(
        self,
        obs: Mapping[str, Any],
        steps: int = 1,
        full: bool = False,
        generator: torch.Generator | None = None,
        validate: bool = True,
    ) -> np.ndarray:
        """Batched prediction from observation histories ``obs[key]`` (B, n_obs_steps, *shape).

        Returns the ``n_action_steps`` actions to execute (B, n_action_steps, A), aligned with the
        last observed frame as in Diffusion Policy, or the whole chunk (B, horizon, A) if ``full``.
        """
        if validate:
            self.objective.validate_steps(steps)
            obs = self._validate_batch(obs)
        generator = generator or self._generator
        graph = self._graph(steps, len(next(iter(obs.values()))))
        if graph is not None:
            actions = graph.predict(obs, generator).cpu().numpy()  # (B, H, A)
        else:
            actions = self.chunk(self._as_tensors(obs), steps, generator).cpu().numpy()  # (B, H, A)
        if not np.isfinite(actions).all():  # never handed to a robot: an observation far outside the training data?
            bad = sorted({int(b) for b in np.nonzero(~np.isfinite(actions))[0]})
            nobs = {k: self.normalizer.normalize(k, v) for k, v in self._as_tensors(obs).items()}
            raise FloatingPointError(
                f"action: the policy computed NaN or inf actions for batch rows {bad}; the observations there "
                f"(normalized range {_ranges(nobs, bad)}) may lie far outside the training data's [-1, 1]"
            )
        if full:
            return actions
        start = self.n_obs_steps - 1
        return actions[:, start : start + self.n_action_steps]

    def chunk(self, obs: Mapping[str, torch.Tensor], steps: int, generator: torch.Generator | None) -> torch.Tensor:
        """Raw observation histories (B, n_obs_steps, *shape) on the device -> the whole chunk (B, horizon, A)
        in action units: normalize, encode once, sample, unnormalize (what a CUDA graph records too)."""
        nobs = {k: self.normalizer.normalize(k, obs[k]) for k in self.obs_keys}
        x = self.objective.sample(self.network, self.network.encode(nobs), (self.horizon, self.action_dim), steps, generator)
        return self.normalizer.unnormalize(self.contract.action_key, x)

    def _as_tensors(self, obs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(obs[k], device=self.device, dtype=torch.float32) for k in self.obs_keys}

    def _graph(self, steps: int, batch: int) -> GraphedSampler | None:
        """The CUDA graph of a batch-1 replanning call at ``steps`` (captured on first use), or None: the
        eager path (no graphs, or a batched call: a rollout's batch shrinks as episodes end, and each
        size would be another capture)."""
        if not self.cuda_graph or batch != 1:
            return None
        if (steps, batch) not in self._graphs:
            try:
                self._graphs[steps, batch] = GraphedSampler(self, steps, batch)
            except RuntimeError as err:  # a network whose forward cannot be recorded: act eagerly
                warnings.warn(f"cuda_graph: capturing the sampler failed ({err}); acting eagerly from now on "
                              "(cuda_graph=False says so up front)")
                self.cuda_graph = False
                return None
        return self._graphs[steps, batch]

    # ------------------------------------------------------------- validation
    def _validate_obs(self, obs: Mapping[str, Any] | np.ndarray) -> tuple[dict[str, np.ndarray], bool]:
        """``act``'s input as (key -> (B, *shape) copies, whether it came batched)."""
        if not isinstance(obs, Mapping):
            if len(self.obs_keys) != 1:
                raise TypeError(f"obs: expected a dict with keys {self.obs_keys}, got {type(obs).__name__}")
            obs = {self.obs_keys[0]: obs}
        frames: dict[str, np.ndarray] = {}
        batched = None
        for key in self.obs_keys:
            value = self._lookup(obs, key)
            # a copy: the history outlives this call, and a control loop may refill one buffer in place
            value = value.detach().cpu().numpy().copy() if torch.is_tensor(value) else np.array(value)
            shape = self.obs_shapes[key]
            is_batch = value.ndim == len(shape) + 1 and value.shape[1:] == shape and len(value) > 0
            if not is_batch and value.shape != shape:
                raise ValueError(f"obs[{key!r}]: expected shape {shape}, got {value.shape} "
                                 f"(a batch of observations: (B, {', '.join(map(str, shape))}))")
            if batched is not None and (is_batch, len(value) if is_batch else 1) != (batched, len(frames[self.obs_keys[0]])):
                first = self.obs_keys[0]
                like = f"a batch of {len(frames[first])}" if batched else "one observation"
                raise ValueError(f"obs[{key!r}]: expected {like} like obs[{first!r}], got shape {value.shape}")
            batched = is_batch
            _check_values(f"obs[{key!r}]", value)
            frames[key] = value if is_batch else value[None]
        return frames, bool(batched)

    def _lookup(self, obs: Mapping[str, Any], key: str) -> Any:
        if key not in obs:
            raise KeyError(f"obs: expected key {key!r} (policy observes {self.obs_keys}), got keys {sorted(obs)}")
        return obs[key]

    def _validate_batch(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(obs, Mapping):
            raise TypeError(f"obs: expected a dict with keys {self.obs_keys}, got {type(obs).__name__}")
        out, batch = {}, None
        for key in self.obs_keys:
            value = self._lookup(obs, key)
            value = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
            expected = (self.n_obs_steps, *self.obs_shapes[key])
            if value.ndim != len(expected) + 1 or value.shape[1:] != expected:
                raise ValueError(f"obs[{key!r}]: expected shape (B, {', '.join(map(str, expected))}), got {value.shape}")
            if batch is not None and value.shape[0] != batch:
                raise ValueError(f"obs[{key!r}]: expected batch size {batch} like the other keys, got {value.shape[0]}")
            batch = value.shape[0]
            _check_values(f"obs[{key!r}]", value)
            out[key] = value
        return out


def _ranges(nobs: Mapping[str, torch.Tensor], rows: list[int]) -> str:
    return ", ".join(f"{k}: {float(v[rows].min()):.3g}..{float(v[rows].max()):.3g}" for k, v in nobs.items())


def _check_values(name: str, value: np.ndarray) -> None:
    if value.dtype == bool or not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise TypeError(f"{name}: expected a real-valued numeric array, got dtype {value.dtype}")
    if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
        raise ValueError(f"{name}: expected finite values, got NaN or inf")


def _check_rows(rows: Sequence[int], n: int | None = None) -> list[int]:
    """Control-loop numbers: distinct integers >= 0, one per observation row when ``n`` is given."""
    out = list(rows) if isinstance(rows, (list, tuple, range, np.ndarray)) else None
    ok = out is not None and all(isinstance(r, (int, np.integer)) and not isinstance(r, bool) and r >= 0 for r in out)
    if not ok or len(set(out)) != len(out) or (n is not None and len(out) != n):
        one_each = f" (one per observation row: {n})" if n is not None else ""
        raise ValueError(f"rows: expected a list of distinct integers >= 0{one_each}, got {rows!r}")
    return [int(r) for r in out]


def read_contract(file: str | os.PathLike, meta: Mapping[str, Any]) -> PolicyContract:
    """A checkpoint's contract; a file written before contracts existed (its run config, observation
    shapes and action size) is migrated, its keys typed by rank as its network was built then."""
    if "contract" not in meta and not all(k in meta for k in ("config", "obs_shapes", "action_dim")):
        raise ValueError(
            f"checkpoint {file}: expected a policy file ({POLICY_FILE}, with its contract: observations, actions, "
            "network and objective), got a file without one" + (" (a training state)" if "step" in meta else "")
        )
    try:
        if "contract" in meta:
            return PolicyContract.from_dict(meta["contract"])
        return PolicyContract.from_run_config(meta["config"], meta["obs_shapes"], meta["action_dim"])
    except (ValueError, TypeError, KeyError, AttributeError, OmegaConfBaseException) as err:
        raise ValueError(f"checkpoint {file}: its contract cannot be read ({mismatch_detail(err)})") from None


def save_policy(
    path: str | os.PathLike,
    network: torch.nn.Module,
    normalizer: MinMaxNormalizer,
    contract: PolicyContract,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Weights, normalizer statistics and the contract in one safetensors file, written atomically; ``meta``
    (JSON: the run config under ``config``, the data, the step) rides along as provenance, with the
    objective's name for tools that read the metadata alone."""
    if not isinstance(contract, PolicyContract):
        raise TypeError(f"contract: expected a PolicyContract, got {type(contract).__name__}")
    tensors = {**prefixed("net", network.state_dict()), **prefixed("normalizer", normalizer.state_dict())}
    return save_tensors(path, tensors, {**(meta or {}), "objective": contract.objective["name"], "contract": contract.to_dict()})


def load_policy(
    path: str | os.PathLike, device: str = "cpu", sampling: Mapping[str, Any] | None = None, cuda_graph: bool | None = None
) -> Policy:
    """Load a trained policy from a ``policy.safetensors`` file or a run folder (``sampling``, ``cuda_graph``:
    see ``from_pretrained``)."""
    return Policy.from_pretrained(path, device, sampling, cuda_graph)
