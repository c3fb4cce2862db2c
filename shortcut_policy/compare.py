"""Shortcut vs flow matching vs Diffusion Policy (DDPM/DDIM) on one backbone, the same data and budget.

    python -m shortcut_policy.compare env=push_t                  # full setting (hours on a CPU)
    python -m shortcut_policy.compare env=push_t preset=quick     # smoke setting, minutes
    python -m shortcut_policy.compare env=push_t policy=transformer
    python -m shortcut_policy.compare checkpoints.shortcut=[runA,runB] ...   # evaluate given runs instead
    python -m shortcut_policy.compare train.device=cuda evaluate=false out=F  # train only (e.g. on a GPU); prints
                                                                              # the command that evaluates the runs
    python -m shortcut_policy.compare env=push_t jobs=2           # two runs trained (and evaluated) at a time

What it computes: ``comparison/runs.py``; the table and plots: ``comparison/report.py``.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .comparison.runs import compare
from .utils.cli import one_line_errors
from .utils.paths import config_dir


@hydra.main(config_path=str(config_dir()), config_name="compare", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    compare(cfg, cfg.out or hydra_cfg.runtime.output_dir, overrides=list(hydra_cfg.overrides.task))


if __name__ == "__main__":
    main()
