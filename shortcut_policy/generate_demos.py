"""Scripted expert demonstrations -> a zarr store in Diffusion Policy's layout.

    python -m shortcut_policy.generate_demos env=push_t episodes=200
    python -m shortcut_policy.generate_demos env=metaworld env.task=pick-place-v3 env.demo_noise=0.1
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from .config import EnvConfig, load_config
from .data.demos import default_dataset_path, generate_demos
from .utils.cli import one_line_errors
from .utils.paths import config_dir


@hydra.main(config_path=str(config_dir()), config_name="generate_demos", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    env = load_config(cfg.env, EnvConfig)  # names, types and the task checked; a missing simulator named
    spec = env.spec()
    out = cfg.out or env.dataset or default_dataset_path(spec, cfg.image)
    generate_demos(spec, cfg.episodes, cfg.seed, out, cfg.keep_failed, cfg.image, cfg.overwrite, noise=env.demo_noise)


if __name__ == "__main__":
    main()
