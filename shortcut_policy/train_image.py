"""Train and evaluate the image path (a class-conditional DiT), for parity with the paper.

    python -m shortcut_policy.train_image                                  # shortcut, digits, CPU-sized DiT
    python -m shortcut_policy.train_image objective=flow_matching_image    # the flow-matching baseline
    python -m shortcut_policy.train_image dataset=folder dataset.root=~/celebahq dataset.image_size=64 model=dit_b
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .config import ImageRunConfig
from .image.trainer import run_image
from .training.resume import command_config
from .utils.cli import one_line_errors
from .utils.paths import config_dir


@hydra.main(config_path=str(config_dir()), config_name="train_image", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    config = command_config(cfg, HydraConfig.get().overrides.task, ImageRunConfig)  # resuming: the run's own config
    run_image(config, config.run_dir or HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
