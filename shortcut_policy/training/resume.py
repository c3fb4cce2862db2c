"""Resuming a run: it continues with the config it was trained with.

``train.resume=true run_dir=<run>`` starts from the run's own ``config.json``; options given beside it
replace the saved ones only where a resumed run may change them (how long it trains, how it logs,
checkpoints and evaluates, where it runs, how it samples). Any other change (data, batch size, learning
rate, seed, network, objective) is refused, naming each key: finishing a run with another setting
would silently mix two trainings.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..checkpoint import METRICS_FILE, MODEL_FILE, POLICY_FILE, TRAIN_STATE_FILE
from ..config import RunConfig, as_trained, load_config, saved_as_trained, to_dict
from ..objectives import objective_options, sampling_options
from ..utils.io import complete_lines, write_text

CONFIG_FILE = "config.json"  # the run's config, written when it starts
RESUMES_FILE = "resumes.jsonl"  # one record per resume: the step it went on from, what it changed
# a folder holding any of these holds a run
RUN_FILES = (CONFIG_FILE, TRAIN_STATE_FILE, METRICS_FILE, POLICY_FILE, MODEL_FILE, RESUMES_FILE)

RESUMABLE = {
    "run_dir", "train.resume", "train.overwrite", "train.device", "train.num_steps", "train.log_every",
    "train.val_every", "train.checkpoint_every", "train.eval_every", "train.eval_episodes", "train.eval_steps",
    "train.periodic_eval_episodes", "train.periodic_eval_steps", "train.curve_last_k", "env.rollout_workers", "env.rollout_envs",
}
RESUMABLE_SECTIONS = ("eval.",)  # the image path's evaluation settings


def saved_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_FILE
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"train.resume: no {CONFIG_FILE} in run_dir {run_dir}: it holds no run to resume") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"train.resume: {path} is not valid JSON ({err})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"train.resume: {path}: expected a JSON object, got {type(saved).__name__}")
    return as_trained(saved)


def config_for_resume(run_dir: str | Path, composed: DictConfig, overrides: Iterable[str], schema: type = RunConfig) -> Any:
    """The run's saved config with the command line's own ``overrides`` (``key=value`` or a group such as
    ``env=push_t``) taken from the composed config; the defaults of the command do not count as asked.
    ``~key`` drops the saved value, so the default applies."""
    config = OmegaConf.create(saved_config(run_dir))
    for override in overrides:
        key = override.lstrip("~+").split("=", 1)[0]
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        if override.startswith("~"):
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(config, parent) if parent else config
            if isinstance(node, DictConfig) and leaf in node:
                del node[leaf]
            continue
        OmegaConf.update(config, key, OmegaConf.select(composed, key), merge=False, force_add=True)
    config.run_dir = str(run_dir)
    try:
        return load_config(config, schema)
    except (ValueError, OmegaConfBaseException) as err:
        raise ValueError(f"train.resume: {Path(run_dir) / CONFIG_FILE} with the overrides given: {err}") from None


def command_config(composed: DictConfig, overrides: Iterable[str], schema: type = RunConfig) -> Any:
    """The config a training command runs with: the composed one, or with ``train.resume=true`` the
    run's own saved config and only what the command line (``overrides``) changes."""
    if not composed.train.resume:
        return load_config(composed, schema)
    if not composed.run_dir:
        raise ValueError("run_dir: expected the folder of the run to resume (train.resume=true run_dir=<run>), got ''")
    return config_for_resume(composed.run_dir, composed, overrides, schema)


def changes(saved: Any, now: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """``key -> (saved, now)`` for every leaf that differs between two nested dicts."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = {}
        for key in sorted(set(saved) | set(now)):
            out.update(changes(saved.get(key), now.get(key), f"{prefix}{key}."))
        return out
    return {} if saved == now else {prefix.rstrip("."): (saved, now)}


def changes_from_saved(saved: dict[str, Any], config: Any) -> tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]]:
    """(every change, the changes a resumed run may not make) from a run's saved config to ``config``: the one
    check of saved settings that resuming a run and picking a run up in a comparison both make. Raises what
    ``load_config`` or ``build_objective`` raises when the saved config no longer loads."""
    # both through the dataclasses: a run saved before an option existed has that option's default, or the
    # value it was trained with where the default has since changed (as_trained); the objective with every
    # option spelled out, so that an option named at its default and one left out compare equal
    saved = with_objective_options(saved_as_trained(saved, type(config)))
    now = with_objective_options(json.loads(json.dumps(to_dict(config))))  # JSON types, as saved (tuples become lists)
    allowed = RESUMABLE | {f"objective.{k}" for k in sampling_options(now.get("objective", {}).get("name"))}
    found = changes(saved, now)
    return found, {k: v for k, v in found.items() if k not in allowed and not k.startswith(RESUMABLE_SECTIONS)}


def listed(refused: dict[str, tuple[Any, Any]]) -> str:
    """Refused changes as an error says them: ``key (saved a, asked b); ...``."""
    return "; ".join(f"{k} (saved {a!r}, asked {b!r})" for k, (a, b) in refused.items())


def with_objective_options(config: dict[str, Any]) -> dict[str, Any]:
    """A config (JSON) whose ``objective`` lists every option of its objective, defaults included."""
    if not isinstance(config.get("objective"), dict):
        return config
    return {**config, "objective": objective_options(config["objective"])}


def check_resume(run_dir: str | Path, config: Any) -> dict[str, tuple[Any, Any]]:
    """Refuse to resume with a config that changes what was trained; returns the changes it may make
    (``record_resume`` writes them once the resumed run is under way)."""
    try:
        found, refused = changes_from_saved(saved_config(run_dir), config)
    except (ValueError, TypeError, OmegaConfBaseException) as err:
        raise ValueError(f"train.resume: {Path(run_dir) / CONFIG_FILE}: {err}") from None
    if refused:
        raise ValueError(
            f"train.resume: {run_dir} was trained with other values of {listed(refused)}. A resumed run keeps what it was "
            f"trained with: drop these overrides (train.resume=true run_dir={run_dir} reads the saved config), "
            "or train in a new run_dir"
        )
    return {k: v for k, v in found.items() if k not in ("train.resume", "train.overwrite", "run_dir")}


def record_resume(run_dir: str | Path, changed: dict[str, tuple[Any, Any]], step: int, num_steps: int) -> None:
    """Append to ``resumes.jsonl`` the step a resume goes on from and what it changed, once training is about
    to go on, so the learning curve can mark where the run was resumed. A finished run resumed only to be
    read (as a comparison reuses its runs) trains nothing: it is recorded only if it changed an option,
    and the curve marks no resume there."""
    if changed:
        note = " (the learning-rate schedule stretches to the new end)" if "train.num_steps" in changed else ""
        print(f"resuming {run_dir} with {', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in changed.items())}{note}")
    elif step >= num_steps:
        return
    record = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "step": step, "num_steps": num_steps,
                         "changed": {k: list(v) for k, v in changed.items()}})
    path = Path(run_dir) / RESUMES_FILE
    write_text(path, "".join(line + "\n" for line in complete_lines(path)) + record + "\n")


def resumed_steps(run_dir: str | Path) -> list[int]:
    """The steps a run was resumed from and trained on, in order (a finished run's record, and those written
    before steps were recorded, are skipped)."""
    steps = []
    for line in complete_lines(Path(run_dir) / RESUMES_FILE):
        try:
            record = json.loads(line)
            if int(record["step"]) < int(record["num_steps"]):
                steps.append(int(record["step"]))
        except (ValueError, KeyError, TypeError):
            continue
    return steps
