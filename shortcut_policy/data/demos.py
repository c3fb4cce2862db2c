"""Scripted demonstrations -> a Diffusion Policy-layout zarr store (``python -m shortcut_policy.generate_demos``).

Runs the environment's scripted expert from seeded starts, keeps the successful episodes (by
default), and writes the env's demonstration keys (``EnvSpec.record_keys``: its low-dim
observations, plus rgb ones when asked) and ``action`` under ``data/``, with ``meta/episode_ends``. The
store's attributes record the expert's success rate, the seeds and the time taken. The store is
written under a temporary name and renamed at the end, so an interrupted run never leaves a
half-written store under the final name. An env whose demonstrations take another way into the store
(robosuite's: through a robomimic file) gives its spec a ``demo_recorder``; nothing here knows which.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from tqdm import tqdm

from ..config import DEMO_ATTEMPTS_PER_EPISODE, EnvConfig
from ..envs import EnvSpec, Expert, get_env_spec
from ..utils.paths import datasets_dir, options_suffix
from .replay_buffer import ReplayBuffer, read_store_meta

GENERATOR = "shortcut_policy.generate_demos"  # recorded in every store written here


def default_dataset_path(env: str | EnvSpec, image: bool = False) -> Path:
    """Where the expert's store of an env (and task, env options and expert options) lives unless
    ``env.dataset`` names one; ``image``: the store that also records the env's camera images."""
    images = "_images" if image else ""
    if isinstance(env, str):
        return datasets_dir() / f"{env}_expert{images}.zarr"
    return datasets_dir() / f"{env.id}_expert{images}{options_suffix({**env.options, **env.expert_options})}.zarr"


def ensure_dataset(env: EnvConfig, progress: bool = True) -> Path:
    """The env's demonstration store: ``env.dataset`` as given (it must exist), else the expert's store at
    the default path, generated when missing. An expert store there must be the one the config asks for
    (env and task, episodes, first seed, action noise, episode limit): a smaller smoke-test store is never
    trained on by mistake."""
    spec = env.spec()
    spec.check_obs_keys(env.obs_keys)
    image = bool(spec.rgb_keys(env.obs_keys))
    if env.dataset:
        path = Path(env.dataset).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"env.dataset: no store at {path} (a store you name is read, never generated); leave env.dataset "
                f"empty to use or generate the expert's at {default_dataset_path(spec, image)}"
            )
        print(f"using demonstrations at {path}")
        return path
    path = default_dataset_path(spec, image)
    asked = {"env": spec.id, "episodes": env.demo_episodes, "seed": env.demo_seed, "kept_failed": False,
             "noise": env.demo_noise, "max_episode_steps": spec.max_episode_steps, "expert_options": dict(spec.expert_options),
             "options": dict(spec.options)}
    if path.exists():
        made = store_provenance(path)
        if made is None:
            print(f"using demonstrations at {path} (not made by generate_demos: env.demo_* not compared)")
            return path
        if made["max_episode_steps"] is None:  # stores from before it was recorded were made at the env's own limit
            made["max_episode_steps"] = get_env_spec(env.name).configure(env.task).max_episode_steps
        if made == asked:
            print(f"using demonstrations at {path}")
            return path
        if not env.regenerate_demos:
            failed = " (failed ones kept too)" if made["kept_failed"] else ""
            noise = lambda n: f" with action noise {n}" if n else ""  # noqa: E731
            options = lambda o: f" with expert options {o}" if o else ""  # noqa: E731
            env_options = lambda o: f" with env options {o}" if o else ""  # noqa: E731
            raise ValueError(
                f"env.demo_episodes/env.demo_seed/env.demo_noise/env.max_episode_steps/env.expert_options/env.options: {path} holds "
                f"{made['episodes']} expert episodes{failed} of {made['env']} from seed {made['seed']}{noise(made['noise'])}"
                f"{options(made['expert_options'])}{env_options(made['options'])} cut at {made['max_episode_steps']} steps, the config asks for "
                f"{env.demo_episodes} successful ones of {spec.id} from seed {env.demo_seed}{noise(env.demo_noise)}"
                f"{options(asked['expert_options'])}{env_options(asked['options'])} cut at {spec.max_episode_steps} steps; "
                "env.regenerate_demos=true replaces it, or set env.dataset to use it as it is"
            )
        print(f"{path} holds {made}, the config asks for {asked}: regenerating it (env.regenerate_demos=true)")
    else:
        print(f"no demonstrations at {path}: generating {env.demo_episodes} expert episodes")
    check_writable(path)
    return generate_demos(spec, env.demo_episodes, env.demo_seed, path, image=image, progress=progress,
                          overwrite=path.exists(), noise=env.demo_noise)


def store_provenance(path: Path) -> dict | None:
    """What made an expert store (env, kept episodes, first seed, action noise), from its metadata; None for a
    store generate_demos did not write. Stores from before the seed was recorded give their first seed tried."""
    attrs, n_episodes = read_store_meta(path)
    if attrs.get("generator") != GENERATOR:
        return None
    seeds = attrs.get("seeds_success", []) + attrs.get("seeds_failed", [])
    return {"env": attrs.get("env"), "episodes": n_episodes, "seed": attrs.get("seed", min(seeds, default=None)),
            "kept_failed": bool(attrs.get("kept_failed", False)), "noise": float(attrs.get("action_noise", 0.0)),
            "max_episode_steps": attrs.get("max_episode_steps"), "expert_options": dict(attrs.get("expert_options", {})),
            "options": dict(attrs.get("options", {}))}


def check_writable(path: Path) -> None:
    """Refuse now, not after generating every demonstration, a store that cannot be written there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as err:
        raise PermissionError(f"env.dataset: cannot write a demonstration store in {path.parent} ({err}); "
                              "set SHORTCUT_POLICY_DATA or env.dataset to a writable place") from None


def run_expert_episode(
    spec: EnvSpec, env, expert: Expert, seed: int, keys: list[str], noise: float = 0.0,
    step_data: Callable[[Any], Mapping[str, np.ndarray]] | None = None,
) -> tuple[dict[str, np.ndarray], bool]:
    """One expert episode from ``env.reset(seed=seed)``: (per-step arrays of ``keys`` and ``action``, success).

    With ``noise`` > 0 the env executes the expert's action plus Gaussian noise of that standard deviation
    (clipped to the action space), and the store records the expert's own action: the demonstrations then
    visit states off the expert's path, labelled with how the expert recovers (DART, Laskey et al. 2017).
    The noise is drawn from ``seed``, so the episode stays reproducible. ``step_data(env)``: more arrays to
    record before each step, kept in their own dtype (the env's ``DemoRecorder``: robosuite's simulator state)."""
    obs, _ = env.reset(seed=seed)
    expert.reset(seed=seed)
    rng = np.random.default_rng(seed)
    frames: dict[str, list] = {k: [] for k in keys + ["action"]}
    extra: dict[str, list] = {}
    success = False
    while True:
        action = np.asarray(expert.act(obs, env), dtype=np.float64)
        for k in keys:
            frames[k].append(obs[k])
        frames["action"].append(action)
        for k, value in (step_data(env) if step_data else {}).items():
            extra.setdefault(k, []).append(value)
        executed = action
        if noise:
            box = env.action_space
            executed = np.clip(action + rng.normal(0.0, noise, action.shape), box.low, box.high)
        obs, _, terminated, truncated, info = env.step(executed)
        success = success or spec.success(info)
        if terminated or truncated:
            break
    dtypes = {k: np.uint8 if spec.obs[k].type == "rgb" else np.float32 for k in keys}
    episode = {k: np.stack(v).astype(dtypes.get(k, np.float32)) for k, v in frames.items()}
    return {**episode, **{k: np.stack(v) for k, v in extra.items()}}, success


def generate_demos(
    env: str | EnvSpec,
    episodes: int,
    seed: int,
    out: str | Path,
    keep_failed: bool = False,
    image: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    noise: float = 0.0,
) -> Path:
    """Generate ``episodes`` kept expert episodes of ``env`` (a name, or a configured spec: one task) into
    the store at ``out``; returns its path. ``noise``: see ``run_expert_episode``."""
    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, got {episodes}")
    if not 0 <= noise < np.inf:
        raise ValueError(f"noise: expected a standard deviation >= 0, got {noise}")
    spec = env if isinstance(env, EnvSpec) else get_env_spec(env).configure()
    if spec.make_expert is None:
        raise ValueError(f"env {spec.id!r} has no scripted expert")
    out = Path(out)
    recorder = spec.demo_recorder  # None: episodes go straight into the store
    beside = recorder.files(out) if recorder else []  # what the recorder writes next to the store
    for path in (out, *beside):
        if path.exists() and not overwrite:
            raise FileExistsError(f"out: {path} already exists; pass overwrite=true to replace it (or remove it)")
    check_writable(out)
    keys = spec.record_keys(spec.rgb_keys(spec.obs) if image else [])
    sim = spec.make(obs_keys=keys, **(recorder.make_options if recorder else {}))
    recorded = []  # the kept episodes, when a recorder writes them
    created = [path for path in beside if not path.exists()]
    expert = spec.make_expert(seed)
    if noise:
        print(f"expert actions executed with Gaussian noise, std {noise} (the expert's own actions are recorded)")
    if spec.expert_options:
        print(f"expert options: {dict(spec.expert_options)}")
    try:
        buffer = ReplayBuffer()
        success_seeds, failed_seeds, lengths = [], [], []
        start = time.perf_counter()
        with tqdm(total=episodes, desc=f"expert demos ({spec.id})", unit="ep", disable=not progress) as bar:
            while len(lengths) < episodes:
                attempts = len(success_seeds) + len(failed_seeds)
                if attempts >= DEMO_ATTEMPTS_PER_EPISODE * episodes:
                    raise RuntimeError(f"expert kept only {len(lengths)}/{episodes} episodes in {attempts} attempts")
                episode_seed = seed + attempts
                episode, success = run_expert_episode(spec, sim, expert, episode_seed, keys, noise,
                                                      recorder.step_data if recorder else None)
                (success_seeds if success else failed_seeds).append(episode_seed)
                if success or keep_failed:
                    lengths.append(len(episode["action"]))
                    (recorded.append if recorder else buffer.add_episode)(episode)
                    bar.update(1)
                bar.set_postfix(expert_success=f"{len(success_seeds) / (attempts + 1):.1%}")
        attempts = len(success_seeds) + len(failed_seeds)
        if recorder:  # while its env is open: it may read it (robosuite: the env_args its file keeps)
            buffer = recorder.finish(spec, sim, recorded, out, keys, overwrite, progress)
        elapsed = time.perf_counter() - start
        buffer.attrs.update(
            {
                "env": spec.id,
                "task": spec.task,
                "generator": GENERATOR,
                "action_noise": noise,
                "max_episode_steps": spec.max_episode_steps,
                "expert_options": dict(spec.expert_options),
                "options": dict(spec.options),
                "seed": seed,  # the first seed tried; with the kept count, what ensure_dataset compares
                "expert_success_rate": len(success_seeds) / attempts,
                "expert_attempts": attempts,
                "kept_failed": keep_failed,
                "seeds_success": success_seeds,
                "seeds_failed": failed_seeds,
                "seconds": elapsed,
                "mean_episode_length": float(np.mean(lengths)),
            }
        )
        path = buffer.save(out, overwrite=overwrite)
    except BaseException:
        for made in created:  # no store, no file of ours: the next run starts clean
            made.unlink(missing_ok=True)
        raise
    finally:
        sim.close()
    print(
        f"expert success {len(success_seeds)}/{attempts} ({len(success_seeds) / attempts:.1%}); "
        f"kept {buffer.n_episodes} episodes, "
        f"{buffer.n_steps} steps in {elapsed:.1f}s\nwrote {path}"
    )
    return path
