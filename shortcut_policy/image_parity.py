"""The paper's image comparison as one command: shortcut vs flow matching, same DiT, data, budget and evaluation.

    python -m shortcut_policy.image_parity                      # digits, CPU-sized DiT
    python -m shortcut_policy.image_parity model=dit_b dataset=folder dataset.root=...
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .config import ImageRunConfig, load_config
from .image.parity import image_parity
from .utils.cli import one_line_errors
from .utils.paths import config_dir


@hydra.main(config_path=str(config_dir()), config_name="image_parity", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    container = OmegaConf.to_container(cfg, resolve=True)
    objectives = container.pop("objectives")
    methods = container.pop("methods")
    retrain = container.pop("retrain")
    out = container.pop("out") or HydraConfig.get().runtime.output_dir
    unknown = sorted(set(methods) - set(objectives))
    if unknown:
        raise ValueError(f"methods: {unknown} have no entry in objectives (known: {sorted(objectives)})")
    base = load_config(container, ImageRunConfig)
    image_parity(base, {m: objectives[m] for m in methods}, out, retrain)


if __name__ == "__main__":
    main()
