"""The policy trainer: demonstrations -> sampler -> normalizer -> objective(network) -> EMA -> checkpoint.

Makes (or reuses) the demonstration store, trains, checkpoints atomically, and ends with a rollout
evaluation at ``train.eval_steps`` whose table, JSON and plot land in the run folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import EVAL_DIR, POLICY_FILE
from ..config import RunConfig, to_dict
from ..contract import PolicyContract
from ..data import MinMaxNormalizer, ReplayBuffer, SequenceSampler, split_episodes
from ..envs import get_env_spec
from ..features import ObsSpec, stored_layout_type
from ..evaluation.report import markdown_table, write_report
from ..evaluation.sweep import evaluate_policy, format_row
from ..data.demos import ensure_dataset
from ..models.network import build_network
from ..models.obs_encoder import check_obs_features
from ..objectives import Objective, build_objective, check_steps
from ..policy import Policy, save_policy
from ..evaluation.rollout import check_fits_env
from . import distributed
from .loop import TrainLoop, train_and_evaluate
from ..utils.device import resolve_device

IMAGE_RANGE = (0.0, 255.0)  # camera images are scaled by a fixed range, not per-pixel statistics


def to_batch(sample: dict, normalizer: MinMaxNormalizer, action_key: str, device: torch.device):
    """Sampler output (numpy) -> normalized tensors: (obs dict (B, To, ...), actions (B, H, A))."""
    obs = {k: normalizer.normalize(k, torch.from_numpy(v).to(device).float()) for k, v in sample["obs"].items()}
    actions = normalizer.normalize(action_key, torch.from_numpy(sample["action"]).to(device).float())
    return obs, actions


def final_eval_steps(requested: list[int] | None, objective: Objective) -> list[int]:
    """The final evaluation's step budgets: ``requested``, checked now so that a budget the objective
    cannot sample with fails in seconds rather than after the whole run. None gives the ends of the
    objective's sweep (``valid_steps``): 1 and 128 for shortcut and flow matching, 1 (DDIM) and 100
    (DDPM) for ddpm."""
    if requested is None:
        sweep = objective.valid_steps()
        return sorted({sweep[0], sweep[-1]})
    check_steps("train.eval_steps", requested, objective)
    return list(requested)


def check_encodable(config: RunConfig) -> None:
    """Refuse, before any demonstration is made, observation keys the policy cannot encode (an image too
    small for its crop); keys a user store adds beyond the env's are checked when the store is read."""
    spec = get_env_spec(config.env.name)
    check_obs_features({k: spec.obs[k] for k in config.env.obs_keys if k in spec.obs}, config.policy.vision)


def policy_contract(config: RunConfig, shapes: dict[str, tuple[int, ...]], action_dim: int, objective: Objective) -> PolicyContract:
    """The contract of the policy a run trains: the store's shapes, each key's kind as the env declares it
    (a key the env does not know: by the store's layout), and the objective with every option spelled out,
    so that the checkpoint keeps acting as trained whatever the defaults become."""
    declared = get_env_spec(config.env.name).obs
    obs = {k: ObsSpec(shape, declared[k].type if k in declared else stored_layout_type(shape)) for k, shape in shapes.items()}
    options = {"name": config.objective["name"], **dataclasses.asdict(objective.config)}
    return PolicyContract(obs, config.env.action_key, action_dim, config.policy, options)


class Trainer(TrainLoop):
    """Trains a policy on demonstrations: any objective, any backbone, any registered env."""

    artifact_file = POLICY_FILE

    def __init__(self, config: RunConfig, run_dir: Path, progress: bool = True) -> None:
        objective = build_objective(config.objective)
        # checked before anything is made on disk; a run that evaluates nothing (eval_episodes=0, as
        # compare trains) has no budgets to check
        self.eval_steps = final_eval_steps(config.train.eval_steps, objective) if config.train.eval_episodes else []
        check_encodable(config)
        super().__init__(config, run_dir, progress)
        tc = config.train
        # under torchrun rank 0 makes the demonstrations; the others wait, then find them
        self.dataset_path = distributed.main_first(lambda: ensure_dataset(config.env, self.progress), self.ranks)
        keys = [*config.env.obs_keys, config.env.action_key]
        self.buffer = ReplayBuffer.open(self.dataset_path, keys=keys)
        actions = self.buffer.data[config.env.action_key]
        if actions.ndim != 2:  # (N,) would read as N-dimensional actions
            raise ValueError(f"env.dataset {self.dataset_path}: data/{config.env.action_key}: expected (steps, action_dim) "
                             f"actions, got shape {actions.shape}")
        shapes = {k: tuple(self.buffer.data[k].shape[1:]) for k in config.env.obs_keys}
        self.contract = policy_contract(config, shapes, int(actions.shape[-1]), objective)
        cameras = self.contract.cameras
        self.buffer.images_to_uint8(cameras)  # before the samplers take views of the arrays
        train_eps, val_eps = split_episodes(self.buffer.n_episodes, tc.val_ratio, tc.seed)
        window = dict(
            horizon=config.policy.horizon,
            n_obs_steps=config.policy.n_obs_steps,
            n_action_steps=config.policy.n_action_steps,
            obs_keys=config.env.obs_keys,
            action_key=config.env.action_key,
        )
        self.samplers = {"train": SequenceSampler(self.buffer, episodes=train_eps, **window)}
        self.train_windows = distributed.shard(len(self.samplers["train"]), self.ranks)  # all of them on one rank
        if len(val_eps):
            self.samplers["val"] = SequenceSampler(self.buffer, episodes=val_eps, **window)
        elif tc.val_ratio > 0:
            print(f"warning: {self.dataset_path} holds {self.buffer.n_episodes} episode(s): none is held out "
                  f"(train.val_ratio={tc.val_ratio}), so no validation loss is logged")
        fixed = {k: IMAGE_RANGE for k in cameras}
        self.normalizer = MinMaxNormalizer.fit({k: self.buffer.data[k] for k in keys}, fixed_ranges=fixed).to(self.device)
        if self.eval_steps or tc.eval_every:  # evaluation rolls out in the env: refuse now, not after training
            try:
                spec = config.env.spec()
                check_fits_env(self.contract, spec)
                if spec.check_store is not None:
                    spec.check_store(self.buffer.attrs, spec.task, spec.options)
            except ValueError as err:
                raise ValueError(
                    f"env.dataset {self.dataset_path}: {err}; train.eval_episodes=0 train.eval_every=0 trains "
                    "without rolling out, or env.obs_keys can name observations the env gives"
                ) from None

        self.setup(objective, build_network(config.policy, self.contract.obs, self.contract.action_dim))

    # ------------------------------------------------------------------ data
    def sample_batch(self, split: str, batch_size: int, rng: np.random.Generator):
        sampler = self.samplers[split]
        windows = self.train_windows if split == "train" else np.arange(len(sampler))
        idx = windows[rng.integers(0, len(windows), size=batch_size)]
        obs, actions = to_batch(sampler.sample(idx), self.normalizer, self.config.env.action_key, self.device)
        return actions, obs

    def has_validation(self) -> bool:
        return "val" in self.samplers

    # ----------------------------------------------------------------- state
    def policy(self) -> Policy:
        """The EMA network as an acting policy (shares weights; no copy)."""
        return Policy(self.ema.model, self.normalizer, self.objective, self.contract, self.device, meta={"config": to_dict(self.config)})

    def artifact_meta(self) -> dict:
        return {"dataset": str(self.dataset_path)}

    def save_artifact(self, meta: dict) -> Path:
        return save_policy(self.run_dir / POLICY_FILE, self.ema.model, self.normalizer, self.contract,
                           {"config": to_dict(self.config), **meta})

    def model_name(self) -> str:
        return self.config.policy.backbone

    def data_summary(self) -> str:
        return f"{self.buffer.n_episodes} episodes, {len(self.samplers['train'])} windows"

    def periodic_eval(self) -> dict:
        rows = evaluate_policy(
            self.policy(), self.config.env.spec(), [1], self.config.train.periodic_eval_episodes,
            latency_calls=0, progress=False, workers=self.config.env.rollout_workers,
        )
        tqdm.write(f"step {self.step}: " + format_row(rows[0]))
        return {"eval_score_1step": rows[0]["score"]}

    def final_evaluation(self) -> dict[str, Path]:
        tc = self.config.train
        if not tc.eval_episodes or not self.eval_steps:
            return {}
        print(f"evaluating at steps {self.eval_steps} on {tc.eval_episodes} test seeds")
        spec = self.config.env.spec()
        rows = evaluate_policy(
            self.policy(), spec, self.eval_steps, tc.eval_episodes,
            n_videos=2, video_dir=self.run_dir / EVAL_DIR / "videos", progress=self.progress,
            workers=self.config.env.rollout_workers,
        )
        paths = write_report(
            self.run_dir / EVAL_DIR,
            rows,
            {"checkpoint": str(self.run_dir / POLICY_FILE), "env": spec.id, "step": self.step,
             "config": to_dict(self.config)},
            spec,
            title=f"{spec.label} · {self.config.objective['name']} · step {self.step}",
        )
        print(markdown_table(rows))
        return paths


def run(config: RunConfig, run_dir: str | Path, progress: bool = True) -> dict[str, Path]:
    """Train and evaluate; returns the paths of everything written. Under torchrun every rank trains
    in rank 0's run folder (its default name holds the time, which the ranks may read a second apart)."""
    ranks, _ = distributed.init(resolve_device(config.train.device, "train.device"))
    run_dir = Path(distributed.broadcast(str(run_dir)))
    paths = train_and_evaluate(lambda: Trainer(config, run_dir, progress=progress and ranks.main), config, run_dir)
    distributed.close()
    return paths
