"""Train a policy, then evaluate it in rollouts.

    python -m shortcut_policy.train env=push_t
    python -m shortcut_policy.train env=push_t train.num_steps=20000 policy.unet.down_dims=[256,512,1024]
    python -m shortcut_policy.train run_dir=<killed run> train.resume=true
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .config import load_config
from .training.resume import config_for_resume
from .training.trainer import run
from .utils.cli import one_line_errors
from .utils.paths import config_dir


@hydra.main(config_path=str(config_dir()), config_name="train", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    if cfg.train.resume:  # the run's own config, with only what this command line changes
        if not cfg.run_dir:
            raise ValueError("run_dir: expected the folder of the run to resume (train.resume=true run_dir=<run>), got ''")
        config = config_for_resume(cfg.run_dir, cfg, HydraConfig.get().overrides.task)
    else:
        config = load_config(cfg)
    run(config, config.run_dir or HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
