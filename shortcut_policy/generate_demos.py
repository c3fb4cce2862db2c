"""Scripted expert demonstrations -> a zarr store in Diffusion Policy's layout.

    python -m shortcut_policy.generate_demos env=push_t episodes=200
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from .data.demos import default_dataset_path, generate_demos
from .utils.cli import one_line_errors
from .utils.paths import config_dir


@hydra.main(config_path=str(config_dir()), config_name="generate_demos", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    out = cfg.out or cfg.env.dataset or default_dataset_path(cfg.env.name)
    generate_demos(cfg.env.name, cfg.episodes, cfg.seed, out, cfg.keep_failed, cfg.image, cfg.overwrite)


if __name__ == "__main__":
    main()
