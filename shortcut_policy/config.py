"""Run configuration: dataclasses mirrored by the hydra yaml under ``configs/``.

The defaults here are the values that work; the yaml files restate them so that ``--cfg job``
shows everything, and ``load_config`` merges any hydra config onto these dataclasses so that a
typo'd key or a wrong type fails at once with the field's name.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from .envs import DEFAULT_ENV, EnvSpec, get_env_spec
from .models.embeddings import T_SCALE
from .models.network import backbone_options, get_backbone
from .models.transformer import TransformerConfig
from .models.unet1d import UNetConfig
from .models.vision import VisionConfig
from .objectives import OBJECTIVES, objective_options
from .utils.checks import at_least, check_ema, check_workers
from .utils.workers import check_jobs

# An expert store tries at most this many starts per kept episode (then gives up): with demo_seed, the
# seeds its demonstrations may use, which must stay clear of the test seeds.
DEMO_ATTEMPTS_PER_EPISODE = 3


@dataclass
class EnvConfig:
    name: str = DEFAULT_ENV
    task: Optional[str] = None  # for an env with tasks (metaworld): which one; None: the env's default task
    obs_keys: Optional[list[str]] = None  # what the policy observes; None: the env's default_obs_keys
    action_key: str = "action"
    dataset: str = ""  # zarr store, which must exist; "" -> <datasets dir>/<name>_expert.zarr, generated when missing
    demo_episodes: int = 200  # successful expert episodes to generate when the store is missing
    demo_seed: int = 100_000  # expert episodes reset with seeds demo_seed, demo_seed+1, ... (test seeds start at 0)
    regenerate_demos: bool = False  # replace the expert store at the default path when it is not the one asked for
    rollout_workers: Optional[int] = None  # processes rollouts step the envs in (0: in-process); None: the env's default
    rollout_envs: Optional[int] = None  # envs a rollout keeps alive at once (0: one per test seed); None: the env's default
    max_episode_steps: Optional[int] = None  # episode length limit (demos and rollouts); None: the env's own
    # expert demos: Gaussian noise of this standard deviation added to the actions executed (the expert's own
    # action is recorded); 0: none
    demo_noise: float = 0.0
    # keyword options of the env's scripted expert (its demonstrations' style; a store per set of options)
    expert_options: dict[str, Any] = field(default_factory=dict)
    # keyword options of the env's make (robosuite: absolute_actions); the demonstrations, the policy and its
    # rollouts all use them
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = get_env_spec(self.name)
        spec.check_task(self.task)
        if self.task is None and spec.tasks:  # a saved run's config names its task, whatever the default becomes
            self.task = spec.default_task
        if self.obs_keys is None:  # a saved run's config always names its keys, so loading one needs no registry entry
            self.obs_keys = list(spec.default_obs_keys)
        if not self.obs_keys:
            raise ValueError("env.obs_keys: expected at least one observation key, got []")
        at_least("env", self, 1, "demo_episodes")
        if self.rollout_workers is not None:
            check_workers(self.rollout_workers, "env.rollout_workers")
        if self.max_episode_steps is not None:
            at_least("env", self, 1, "max_episode_steps")
        if self.rollout_envs is not None:
            at_least("env", self, 0, "rollout_envs")
        if not 0 <= self.demo_noise < math.inf:
            raise ValueError(f"env.demo_noise: expected a standard deviation >= 0 (0: none), got {self.demo_noise}")

    def check_apart_from_tests(self, seed_start: int, episodes: int, field: str) -> None:
        """Refuse demonstration seeds that could be test seeds: an env whose starts come from its seed would
        then be tested on the episodes it was shown."""
        demo = range(self.demo_seed, self.demo_seed + DEMO_ATTEMPTS_PER_EPISODE * self.demo_episodes)
        test = range(seed_start, seed_start + episodes)
        if not self.dataset and demo.start < test.stop and test.start < demo.stop:
            raise ValueError(
                f"env.demo_seed: the expert's demonstrations may use seeds {demo.start}..{demo.stop - 1}, the test "
                f"episodes ({field}) use {test.start}..{test.stop - 1}; expected no seed in both"
            )

    def spec(self) -> EnvSpec:
        """The env's spec with this config's task and episode length: what demos, rollouts and reports use.

        A missing simulator fails here, with the pip command, before any demonstration or rollout; not when
        the config loads, so that a policy loads (and acts on a robot) where its simulator is not installed."""
        spec = get_env_spec(self.name)
        spec.check_installed()
        spec = spec.configure(self.task, self.max_episode_steps, self.expert_options, self.options)
        return spec if self.rollout_envs is None else dataclasses.replace(spec, rollout_envs=self.rollout_envs)


@dataclass
class PolicyConfig:
    backbone: str = "unet"
    horizon: int = 16  # length of the predicted action chunk
    n_obs_steps: int = 2  # observation frames the policy conditions on
    n_action_steps: int = 8  # actions executed from each chunk before replanning
    unet: UNetConfig = field(default_factory=UNetConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)  # the image encoder of camera keys, if any
    # t and d are multiplied by this before their sinusoids. 100 for every objective: MeanFlow's targets need it
    # (at 1000 they explode), and with this network and budget shortcut's many-step score is higher at 100 than
    # at 1000 (flow matching's no different); with policy=unet_wide at batch 128 shortcut does better at 1000
    # (docs/results/one_step.md)
    embedding_scale: float = T_SCALE

    def __post_init__(self) -> None:
        backbone_options(self)  # the backbone is known and its options are its dataclass
        if not (math.isfinite(self.embedding_scale) and self.embedding_scale > 0):
            raise ValueError(f"policy.embedding_scale: expected a positive finite number, got {self.embedding_scale}")
        at_least("policy", self, 1, "horizon")
        if not 1 <= self.n_obs_steps <= self.horizon:
            raise ValueError(f"policy.n_obs_steps: expected 1..horizon={self.horizon}, got {self.n_obs_steps}")
        if self.n_action_steps < 1 or self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise ValueError(
                "policy.n_action_steps: expected 1 <= n_action_steps <= horizon - n_obs_steps + 1 = "
                f"{self.horizon - self.n_obs_steps + 1}, got {self.n_action_steps}"
            )
        get_backbone(self.backbone).check(self)


@dataclass
class TrainConfig:
    seed: int = 0
    device: str = "auto"  # "auto": cuda when available, else cpu
    num_steps: int = 12000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-6
    warmup_steps: int = 300
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    ema_power: float = 0.75  # EMA decay warms up as 1 - (1 + step)^-power (Diffusion Policy's schedule)
    ema_max_decay: float = 0.9999
    val_ratio: float = 0.02  # share of episodes held out for the validation loss
    log_every: int = 50
    val_every: int = 500
    checkpoint_every: int = 500
    eval_every: int = 0  # periodic rollout evaluation every k steps and at the last (the learning curve); 0 = none
    eval_episodes: int = 50  # final evaluation episodes (test seeds 0..eval_episodes-1)
    # step budgets of the final evaluation; None: the objective's fewest and most (1 and 128 for shortcut
    # and flow matching, 1 (DDIM) and 100 (DDPM) for ddpm)
    eval_steps: Optional[list[int]] = None  # Optional, not `| None`: omegaconf reads the annotation
    periodic_eval_episodes: int = 10  # the rollout budget of each periodic evaluation (test seeds 0..n-1)
    periodic_eval_steps: list[int] = field(default_factory=lambda: [1])  # its step budgets
    curve_last_k: int = 5  # the learning curve's second summary: the mean of the last k periodic evaluations
    resume: bool = False  # continue from run_dir's train_state.safetensors, with the run's saved config
    overwrite: bool = False  # a new run may replace the run already in run_dir (else that is refused)

    def __post_init__(self) -> None:
        at_least("train", self, 1, "num_steps", "batch_size", "log_every", "val_every", "checkpoint_every")
        at_least("train", self, 0, "seed")
        at_least("train", self, 2, "batch_size")
        if not 0 <= self.val_ratio < 1:
            raise ValueError(f"train.val_ratio: expected a value in [0, 1), got {self.val_ratio}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"train.device: expected 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        if not 0 < self.lr < math.inf:  # NaN fails the comparison too
            raise ValueError(f"train.lr: expected > 0, got {self.lr}")
        at_least("train", self, 0, "weight_decay", "warmup_steps", "grad_clip", "eval_every", "eval_episodes")
        check_ema(self.ema_power, self.ema_max_decay)
        if self.eval_every and self.periodic_eval_episodes < 1:
            raise ValueError(f"train.periodic_eval_episodes: expected >= 1 with eval_every={self.eval_every}, got {self.periodic_eval_episodes}")
        if self.eval_every and not self.periodic_eval_steps:
            raise ValueError(f"train.periodic_eval_steps: expected at least one step budget with eval_every={self.eval_every}, got []")
        if len(set(self.periodic_eval_steps)) != len(self.periodic_eval_steps):
            raise ValueError(f"train.periodic_eval_steps: expected each step budget once, got {list(self.periodic_eval_steps)}")
        at_least("train", self, 1, "curve_last_k")
        if self.eval_steps is not None and any(k < 1 for k in self.eval_steps):
            raise ValueError(f"train.eval_steps: expected step counts >= 1 (or null: the objective's), got {self.eval_steps}")


@dataclass
class RunConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    objective: dict[str, Any] = field(default_factory=lambda: {"name": "meanflow"})
    train: TrainConfig = field(default_factory=TrainConfig)
    run_dir: str = ""  # "" -> hydra's output directory

    def __post_init__(self) -> None:
        tc = self.train
        self.env.check_apart_from_tests(0, max(tc.eval_episodes, tc.periodic_eval_episodes if tc.eval_every else 0),
                                        "train.eval_episodes")


def _compare_objectives() -> dict[str, dict[str, Any]]:
    """Every registered objective with its options spelled out (its dataclass's defaults)."""
    return {name: objective_options({"name": name}) for name in OBJECTIVES}


def _compare_steps() -> dict[str, list[int]]:
    """Every registered objective's default sweep."""
    return {name: entry.default_steps() for name, entry in OBJECTIVES.items()}


# The node of hydra's ConfigStore that compare.yaml and suite.yaml take their methods from, so that the
# objective registry is the one list of objectives: no yaml names them.
REGISTERED_METHODS = "registered_methods"


def register_config_nodes() -> None:
    """Store (again) the nodes made from the registries in hydra's ConfigStore: every registered objective as a
    comparison method, with its options, its default step sweep and no given runs. Runs when this module is
    imported; call it again after registering an objective later."""
    node = {"methods": list(OBJECTIVES), "objectives": _compare_objectives(), "steps": _compare_steps(),
            "checkpoints": {name: [] for name in OBJECTIVES}}
    ConfigStore.instance().store(name=REGISTERED_METHODS, node=node)


@dataclass
class CompareConfig:
    """``python -m shortcut_policy.compare``: methods trained on one backbone, data and budget, then
    evaluated on the same test seeds (``configs/compare.yaml``; the defaults are its full preset)."""

    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)  # the budget every method trains with
    methods: list[str] = field(default_factory=lambda: list(OBJECTIVES))
    # dict fields given in a config replace these defaults whole (load_config), so entries can be removed
    objectives: dict[str, dict[str, Any]] = field(default_factory=_compare_objectives)  # method -> objective config
    steps: dict[str, list[int]] = field(default_factory=_compare_steps)  # method -> step budgets (NFE); absent: all
    # method -> run folders to evaluate instead of training ([]: train)
    checkpoints: dict[str, list[str]] = field(default_factory=lambda: {m: [] for m in OBJECTIVES})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # training seeds, one run each per method
    episodes: int = 50  # test seeds seed_start .. seed_start + episodes - 1
    seed_start: int = 0
    latency_calls: int = 200  # act() calls timed per step budget (0: no latency)
    evaluate: bool = True  # false: train (or resume) the runs and stop; evaluate them later
    jobs: int = 1  # runs trained, then evaluated, this many at a time, each in its own process
    retrain: bool = False  # false: runs already in <out>/runs resume (finished ones are reused)
    out: str = ""  # "" -> hydra's output directory

    def __post_init__(self) -> None:
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods: expected a non-empty list of distinct methods, got {self.methods}")
        for method in self.methods:
            if method not in self.objectives:
                raise ValueError(f"methods: {method!r} has no entry under objectives ({sorted(self.objectives)})")
        for method, budgets in self.steps.items():
            if not budgets or any(k < 1 for k in budgets):
                raise ValueError(f"steps.{method}: expected a non-empty list of step counts >= 1, got {budgets}")
            if method not in self.objectives:
                raise ValueError(f"steps.{method}: {method!r} has no entry under objectives ({sorted(self.objectives)})")
        for method, runs in self.checkpoints.items():
            if runs and method not in self.methods:
                raise ValueError(f"checkpoints.{method}: runs given for a method not in methods {self.methods}")
        if any(not self.checkpoints.get(m) for m in self.methods) and (
            not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0
        ):
            raise ValueError(f"seeds: expected a non-empty list of distinct training seeds >= 0, got {self.seeds}")
        at_least("", self, 1, "episodes")
        at_least("", self, 0, "seed_start")
        self.env.check_apart_from_tests(self.seed_start, self.episodes, "seed_start, episodes")
        if self.latency_calls < 0:
            raise ValueError(f"latency_calls: expected >= 0 (0: no latency measured), got {self.latency_calls}")
        check_jobs(self.jobs)


@dataclass
class SuiteConfig(CompareConfig):
    """``python -m shortcut_policy.suite``: the comparison (methods x training seeds, one backbone, data and
    budget) on each of several tasks of one env, reported per task group (``configs/suite.yaml``)."""

    tasks: list[str] = field(default_factory=list)  # tasks of env.name; []: all of them (env.task is not used)
    videos: int = 1  # rollout videos per task: the first method's first run, at its fewest steps

    def __post_init__(self) -> None:
        super().__post_init__()
        spec = get_env_spec(self.env.name)
        if not spec.tasks:
            raise ValueError(f"env.name: the suite runs the tasks of an env; {self.env.name} has none (use compare)")
        if not self.tasks:
            self.tasks = list(spec.tasks)
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks: expected distinct tasks, got {self.tasks}")
        for task in self.tasks:
            try:
                spec.check_task(task)
            except ValueError as err:
                raise ValueError(f"tasks: {err}") from None
        if any(self.checkpoints.get(m) for m in self.methods):
            raise ValueError("checkpoints: the suite trains (or resumes) its own runs; give checkpoints to compare instead")
        if self.env.dataset:
            raise ValueError(f"env.dataset: the suite makes (or reuses) one expert store per task; expected '', got {self.env.dataset!r}")
        at_least("", self, 0, "videos")


# ------------------------------------------------------------------ image path (DiT)
@dataclass
class ImageDataConfig:
    name: str = "digits"  # digits (scikit-learn's, offline) | folder (one subfolder per class)
    root: str = ""  # folder datasets only
    image_size: int = 8  # digits are 8 x 8; larger sizes upsample
    channels: int = 1  # folder datasets: 1 (grey) or 3 (RGB); digits are grey
    test_fraction: float = 0.2  # held out per class: the feature classifier's test accuracy
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in ("digits", "folder"):
            raise ValueError(f"dataset.name: expected 'digits' or 'folder', got {self.name!r}")
        if self.name == "folder" and not self.root:
            raise ValueError("dataset.root: expected the dataset folder for dataset.name=folder, got ''")
        at_least("dataset", self, 2, "image_size")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"dataset.test_fraction: expected a value in (0, 1), got {self.test_fraction}")


@dataclass
class DiTConfig:
    """CPU size by default; the paper's DiT-B is hidden 768, depth 12, 12 heads, patch 2 (configs/model/dit_b.yaml)."""

    hidden: int = 128
    depth: int = 4
    heads: int = 4
    patch_size: int = 2
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        at_least("model", self, 1, "heads")
        if self.hidden < 4 or self.hidden % 4 or self.hidden % self.heads:
            raise ValueError(
                f"model.hidden: expected a multiple of 4 (2D sin-cos positions) and of heads={self.heads}, got {self.hidden}"
            )
        at_least("model", self, 1, "depth", "patch_size")
        if not 0 < self.mlp_ratio < math.inf:
            raise ValueError(f"model.mlp_ratio: expected > 0, got {self.mlp_ratio}")


@dataclass
class ImageEvalConfig:
    steps: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128])
    samples_per_class: int = 100  # generated images per class and step budget for the Fréchet distance
    batch_size: int = 500
    grid_per_class: int = 10  # columns of the saved sample grids
    classifier_epochs: int = 30
    # a local TorchScript Inception (FID features); "" -> the trained classifier. torch.jit.load runs code
    # from the file: only a file the user trusts
    feature_extractor: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.steps or any(s < 1 for s in self.steps):
            raise ValueError(f"eval.steps: expected a non-empty list of step counts >= 1, got {self.steps}")
        at_least("eval", self, 2, "samples_per_class")


def _image_train() -> TrainConfig:
    return TrainConfig(num_steps=4000, batch_size=128, lr=5e-4, warmup_steps=200, ema_max_decay=0.999,
                       val_every=500, checkpoint_every=500, eval_steps=[])


@dataclass
class ImageRunConfig:
    dataset: ImageDataConfig = field(default_factory=ImageDataConfig)
    model: DiTConfig = field(default_factory=DiTConfig)
    objective: dict[str, Any] = field(default_factory=lambda: {"name": "shortcut"})
    train: TrainConfig = field(default_factory=_image_train)
    eval: ImageEvalConfig = field(default_factory=ImageEvalConfig)
    run_dir: str = ""

    def __post_init__(self) -> None:
        if self.dataset.image_size % self.model.patch_size:
            raise ValueError(
                f"model.patch_size: expected a divisor of dataset.image_size={self.dataset.image_size}, got {self.model.patch_size}"
            )


def load_config(cfg: DictConfig | dict | None = None, schema: type = RunConfig) -> Any:
    """Merge a hydra/omegaconf config onto the dataclass defaults (``schema``), validating names and types.

    A top-level dict field that ``cfg`` gives (``objective``, compare's ``objectives``, ``steps``, ...)
    replaces the default whole: merged, a default entry that the config removed would come back.
    An ``env`` that ``cfg`` names without its ``obs_keys`` observes that env's ``default_obs_keys``."""
    base = OmegaConf.structured(schema)
    if cfg is not None:
        if isinstance(cfg, dict):
            cfg = OmegaConf.create(cfg)
        for f in dataclasses.fields(schema):
            if str(f.type).startswith("dict[") and f.name in cfg:  # annotations are strings here
                base[f.name] = {}
        base = OmegaConf.merge(base, cfg)
        env = cfg.get("env")
        if isinstance(env, DictConfig) and "name" in env and "obs_keys" not in env:
            base.env.obs_keys = None  # the defaults' keys belong to the default env; EnvConfig fills the named env's
    return OmegaConf.to_object(base)


# Options added after runs had been saved, whose default has since changed: a saved config without the key
# was trained with the value here, not with today's default, so it loads (and resumes) as it was trained.
AS_TRAINED_BEFORE_THE_OPTION = {("policy", "transformer", "conditioning"): "cross_attention"}


def as_trained(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved run config (a copy) with the values it was trained with filled in where it predates an option."""
    saved = json.loads(json.dumps(saved))
    for *parents, key in AS_TRAINED_BEFORE_THE_OPTION:
        node = saved
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict) and key not in node:
            node[key] = AS_TRAINED_BEFORE_THE_OPTION[(*parents, key)]
    return saved


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def saved_as_trained(saved: dict[str, Any], schema: type = RunConfig) -> dict[str, Any]:
    """A saved config read through today's dataclasses, in JSON types: an option added since it was saved takes the
    value it was trained with (as_trained), else that option's default. Raises what ``load_config`` raises."""
    return json.loads(json.dumps(to_dict(load_config(as_trained(saved), schema))))


register_config_nodes()
