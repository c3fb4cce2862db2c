"""Train a policy, then evaluate it in rollouts.

    python -m shortcut_policy.train env=push_t
    python -m shortcut_policy.train env=push_t train.num_steps=20000 policy.unet.down_dims=[256,512,1024]
    python -m shortcut_policy.train run_dir=<killed run> train.resume=true
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .training.resume import command_config
from .training.trainer import run
from .utils.cli import one_line_errors
from .utils.paths import config_dir


@hydra.main(config_path=str(config_dir()), config_name="train", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    config = command_config(cfg, HydraConfig.get().overrides.task)  # resuming: the run's own config
    run(config, config.run_dir or HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
