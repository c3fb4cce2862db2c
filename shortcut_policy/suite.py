"""The methods compared on a suite of tasks, reported per task group (Meta-World: by difficulty).

    python -m shortcut_policy.suite                                # configs/suite.yaml: 12 Meta-World tasks
    python -m shortcut_policy.suite "tasks=[reach-v3,push-v3]" train.num_steps=300 episodes=5   # minutes: a smoke test
    python -m shortcut_policy.suite tasks=[reach-v3,push-v3] seeds=[0,1,2] jobs=2 out=outputs/suite/mine

Stopped and started again with the same ``out``, it picks up where it stopped (runs resume, evaluated
runs keep their rows). What it computes: ``comparison/suite.py``.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .comparison.suite import run_suite
from .utils.cli import one_line_errors
from .utils.paths import config_dir


@hydra.main(config_path=str(config_dir()), config_name="suite", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    run_suite(cfg, cfg.out or HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
