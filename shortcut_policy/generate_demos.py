"""Scripted expert demonstrations -> a zarr store in Diffusion Policy's layout.

    python -m shortcut_policy.generate_demos env=push_t episodes=200
    python -m shortcut_policy.generate_demos env=metaworld env.task=pick-place-v3 env.demo_noise=0.1
    python -m shortcut_policy.generate_demos env=push_t_image     (records the camera images too)
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
    image = bool(spec.rgb_keys(env.obs_keys)) if cfg.image is None else cfg.image
    out = cfg.out or env.dataset or default_dataset_path(spec, image)
    generate_demos(spec, cfg.episodes, cfg.seed, out, cfg.keep_failed, image, cfg.overwrite, noise=env.demo_noise)


if __name__ == "__main__":
    main()
