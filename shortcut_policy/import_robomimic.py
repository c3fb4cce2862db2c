"""A robomimic HDF5 file -> a zarr store in Diffusion Policy's layout, ready for ``env.dataset``.

    python -m shortcut_policy.import_robomimic path=lift_ph_low_dim.hdf5 mask=train
    python -m shortcut_policy.import_robomimic path=can_ph.hdf5 abs_action=true \\
        "obs_keys=[object,robot0_eef_pos,robot0_eef_quat,robot0_gripper_qpos]"

The store keeps the file's ``env_args`` in its attributes, so the robosuite env a policy rolls out in can
be built as the demonstrations were recorded. The robomimic package itself is not needed (its release on
PyPI drives an older robosuite): the layout is read here, with h5py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from .data.robomimic import read_robomimic
from .envs import get_env_spec
from .utils.cli import one_line_errors
from .utils.paths import config_dir, datasets_dir, options_suffix


def default_out(path: Path, mask: str | None, options: Mapping[str, Any]) -> Path:
    return datasets_dir() / f"{path.stem}{f'_{mask}' if mask else ''}{options_suffix(options)}.zarr"


def import_file(path: str | Path, out: str | Path | None = None, obs_keys: list[str] | None = None,
                mask: str | None = None, env: str = "", options: Mapping[str, Any] | None = None,
                overwrite: bool = False, progress: bool = True) -> Path:
    """Read ``path`` (the demos of ``mask``, the ``obs_keys``) and save it as a store; returns the store's path.
    ``options``: the options of ``env`` the store is for; when they change the actions (robosuite's
    absolute actions), the env's converter turns the recorded ones into those."""
    path = Path(path).expanduser()
    spec = get_env_spec(env).configure(options=options) if env else None  # options checked (and defaults dropped)
    options = dict(spec.options) if spec else {}
    out = Path(out).expanduser() if out else default_out(path, mask, options)
    if out.exists() and not overwrite:  # refused before reading the whole file
        raise FileExistsError(f"out: {out} already exists; pass overwrite=true to replace it")
    make_converter = None
    if options:
        if spec.make_action_converter is None:
            raise ValueError(f"options: the {env} env has no converter of recorded actions, got {options}")
        spec.check_installed()
        make_converter = lambda env_args: spec.make_action_converter(env_args, options)  # noqa: E731
    buffer = read_robomimic(path, obs_keys, mask, make_converter, progress)  # the file's checks before any simulator
    saved = buffer.save(out, overwrite=overwrite)
    keys = ", ".join(f"{k} {a.shape[1:]} {a.dtype}" for k, a in buffer.data.items())
    print(f"imported {buffer.n_episodes} demos ({buffer.n_steps} steps; {keys}) from {path}\nwrote {saved}")
    return saved


@hydra.main(config_path=str(config_dir()), config_name="import_robomimic", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    if cfg.obs_keys is not None and not isinstance(cfg.obs_keys, ListConfig):
        raise ValueError(f"obs_keys: expected a list of keys, e.g. [object,robot0_eef_pos], got {cfg.obs_keys!r}")
    for key in ("abs_action", "overwrite"):
        if not isinstance(cfg[key], bool):
            raise ValueError(f"{key}: expected true or false, got {cfg[key]!r}")
    obs_keys = OmegaConf.to_container(cfg.obs_keys) if cfg.obs_keys is not None else None
    options = OmegaConf.to_container(cfg.abs_options) if cfg.abs_action else {}
    import_file(cfg.path, cfg.out or None, obs_keys, cfg.mask, cfg.env, options, cfg.overwrite)


if __name__ == "__main__":
    main()
