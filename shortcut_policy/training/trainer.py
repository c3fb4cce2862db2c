"""The policy trainer: demonstrations (store -> sampler -> normalizer) -> objective(network) -> EMA -> checkpoint.

Makes (or reuses) the demonstration store, trains, checkpoints atomically, and ends with a rollout
evaluation at ``train.eval_steps`` whose table, JSON and plot land in the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import EVAL_DIR, METRICS_FILE, POLICY_FILE
from ..config import RunConfig, to_dict
from ..contract import PolicyContract
from ..data import MinMaxNormalizer
from ..data.demonstrations import Demonstrations
from ..data.demos import ensure_dataset
from ..envs import get_env_spec
from ..evaluation.curve import budget_line, eval_record, read_jsonl, summary_lines, write_curve
from ..evaluation.report import markdown_table, write_report
from ..evaluation.rollout import check_fits_env
from ..evaluation.sweep import demonstration_smoothness, evaluate_policy, format_row
from ..models.network import build_network
from ..models.obs_encoder import check_obs_features
from ..objectives import Objective, build_objective, check_steps
from ..policy import Policy, save_policy
from ..utils.device import cpu_model, describe_device, resolve_device
from . import distributed
from .loop import TrainLoop, train_and_evaluate
from .resume import resumed_steps


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


class Trainer(TrainLoop):
    """Trains a policy on demonstrations: any objective, any backbone, any registered env."""

    artifact_file = POLICY_FILE

    def __init__(self, config: RunConfig, run_dir: Path, progress: bool = True) -> None:
        objective = build_objective(config.objective)
        # checked before anything is made on disk; a run that evaluates nothing (eval_episodes=0, as
        # compare trains) has no budgets to check
        self.eval_steps = final_eval_steps(config.train.eval_steps, objective) if config.train.eval_episodes else []
        if config.train.eval_every:
            check_steps("train.periodic_eval_steps", config.train.periodic_eval_steps, objective)
        check_encodable(config)
        super().__init__(config, run_dir, progress)
        env, policy, tc = config.env, config.policy, config.train

        # store (under torchrun rank 0 makes it; the others wait, then find it) -> split -> windows -> normalizer
        path = distributed.main_first(lambda: ensure_dataset(env, self.progress), self.ranks)
        window = {"horizon": policy.horizon, "n_obs_steps": policy.n_obs_steps, "n_action_steps": policy.n_action_steps}
        self.demos = Demonstrations.open(path, env.obs_keys, env.action_key, get_env_spec(env.name).obs, window,
                                         tc.val_ratio, tc.seed)
        self.train_windows = distributed.shard(len(self.demos.samplers["train"]), self.ranks)  # all of them on one rank
        self.normalizer = self.demos.normalizer.to(self.device)

        # what the policy takes and gives; refused now, not after training, if its rollouts cannot run
        self.contract = PolicyContract(self.demos.obs, env.action_key, self.demos.action_dim, policy, config.objective)
        if self.eval_steps or tc.eval_every:
            self.check_rollouts()

        self.setup(objective, build_network(policy, self.contract.obs, self.contract.action_dim))

    def check_rollouts(self) -> None:
        """The env gives what the policy observes and takes its actions, and can reproduce the store's setup."""
        try:
            spec = self.config.env.spec()
            check_fits_env(self.contract, spec)
            if spec.check_store is not None:
                spec.check_store(self.demos.buffer.attrs, spec.task, spec.options)
        except ValueError as err:
            raise ValueError(
                f"env.dataset {self.demos.path}: {err}; train.eval_episodes=0 train.eval_every=0 trains "
                "without rolling out, or env.obs_keys can name observations the env gives"
            ) from None

    # ------------------------------------------------------------------ data
    def sample_batch(self, split: str, batch_size: int, rng: np.random.Generator):
        sampler = self.demos.samplers[split]
        windows = self.train_windows if split == "train" else np.arange(len(sampler))
        idx = windows[rng.integers(0, len(windows), size=batch_size)]
        obs, actions = to_batch(sampler.sample(idx), self.normalizer, self.config.env.action_key, self.device)
        return actions, obs

    def has_validation(self) -> bool:
        return "val" in self.demos.samplers

    # ----------------------------------------------------------------- state
    def policy(self) -> Policy:
        """The EMA network as an acting policy (shares weights; no copy)."""
        return Policy(self.ema.model, self.normalizer, self.objective, self.contract, self.device, meta={"config": to_dict(self.config)})

    def artifact_meta(self) -> dict:
        return {"dataset": str(Path(self.demos.path).resolve())}  # found again from any working directory

    def save_artifact(self, meta: dict) -> Path:
        return save_policy(self.run_dir / POLICY_FILE, self.ema.model, self.normalizer, self.contract,
                           {"config": to_dict(self.config), **meta})

    def model_name(self) -> str:
        return self.config.policy.backbone

    def data_summary(self) -> str:
        return self.demos.summary()

    def periodic_eval(self) -> dict:
        """Roll out the EMA policy at ``train.periodic_eval_steps`` on ``periodic_eval_episodes`` test seeds."""
        tc = self.config.train
        rows = evaluate_policy(
            self.policy(), self.config.env.spec(), tc.periodic_eval_steps, tc.periodic_eval_episodes,
            latency_calls=0, progress=False, workers=self.config.env.rollout_workers,
        )
        record = {}
        for row in rows:
            tqdm.write(f"step {self.step}: " + format_row(row))
            record.update(eval_record(row))
        return record

    def budget(self) -> dict:
        """What the run has spent so far, as its figures state it."""
        tc = self.config.train
        windows = len(self.demos.samplers["train"])
        return {"steps": self.step, "num_steps": tc.num_steps, "batch_size": tc.batch_size, "world_size": self.ranks.world_size,
                "samples": self.samples, "windows": windows, "epochs": self.samples / windows,
                "wall_s": self.wall_s, "eval_s": self.eval_s,
                "device_kind": "GPU" if self.device.type == "cuda" else "CPU",
                "device": describe_device(self.device) if self.device.type == "cuda" else f"{cpu_model()}, threads: {torch.get_num_threads()}"}

    def write_curve(self, log_path: Path) -> dict[str, Path]:
        """The learning curve so far; a curve that cannot be written is said, and training goes on."""
        try:
            return self._write_curve(log_path)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            tqdm.write(f"warning: the learning curve was not written at step {self.step}: {err}")
            return {}

    def _write_curve(self, log_path: Path) -> dict[str, Path]:
        tc = self.config.train
        title = (f"{self.config.env.spec().label} · {self.config.objective['name']} · seed {tc.seed} · "
                 f"test seeds 0-{tc.periodic_eval_episodes - 1} per evaluation")
        return write_curve(self.run_dir / EVAL_DIR, read_jsonl(log_path), tc.periodic_eval_steps, tc.curve_last_k,
                           resumed_steps(self.run_dir), title, self.budget())

    def after_periodic_eval(self, log_path: Path) -> None:
        self.write_curve(log_path)

    def final_evaluation(self) -> dict[str, Path]:
        tc = self.config.train
        curve = self.write_curve(self.run_dir / METRICS_FILE) if tc.eval_every else {}
        if curve:
            summaries = json.loads(curve["curve_json"].read_text())["summaries"]
            print("learning curve: " + "\n  ".join(["", *summary_lines(summaries)]))
        if not tc.eval_episodes or not self.eval_steps:
            return curve
        print(f"evaluating at steps {self.eval_steps} on {tc.eval_episodes} test seeds")
        spec = self.config.env.spec()
        rows = evaluate_policy(
            self.policy(), spec, self.eval_steps, tc.eval_episodes,
            n_videos=2, video_dir=self.run_dir / EVAL_DIR / "videos", progress=self.progress,
            workers=self.config.env.rollout_workers,
        )
        budget = self.budget()
        demonstrations = demonstration_smoothness(self.policy(), self.demos.path)
        paths = write_report(
            self.run_dir / EVAL_DIR,
            rows,
            {"checkpoint": str(self.run_dir / POLICY_FILE), "env": spec.id, "step": self.step,
             "budget": {**budget, "line": budget_line(budget)}, "demonstrations": demonstrations, "config": to_dict(self.config)},
            spec,
            title=f"{spec.label} · {self.config.objective['name']} · seed {tc.seed}\n{budget_line(budget)}",
        )
        print(markdown_table(rows, demonstrations))
        return {**curve, **paths}


def run(config: RunConfig, run_dir: str | Path, progress: bool = True) -> dict[str, Path]:
    """Train and evaluate; returns the paths of everything written. Under torchrun every rank trains
    in rank 0's run folder (its default name holds the time, which the ranks may read a second apart)."""
    ranks, _ = distributed.init(resolve_device(config.train.device, "train.device"))
    run_dir = Path(distributed.broadcast(str(run_dir)))
    paths = train_and_evaluate(lambda: Trainer(config, run_dir, progress=progress and ranks.main), config, run_dir)
    distributed.close()
    return paths
