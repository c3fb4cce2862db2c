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

import hydra
from omegaconf import DictConfig, OmegaConf

from .data.replay_buffer import DatasetError
from .data.robomimic import read_info, read_robomimic
from .envs import get_env_spec
from .utils.cli import one_line_errors
from .utils.paths import config_dir, datasets_dir


def default_out(path: Path, mask: str | None, abs_action: bool) -> Path:
    name = path.stem + (f"_{mask}" if mask else "") + ("_abs" if abs_action else "")
    return datasets_dir() / f"{name}.zarr"


def import_file(path: str | Path, out: str | Path | None = None, obs_keys: list[str] | None = None,
                mask: str | None = None, abs_action: bool = False, overwrite: bool = False,
                progress: bool = True, env: str = "") -> Path:
    """Read ``path`` (the demos of ``mask``, the ``obs_keys``) and save it as a store; returns the store's path.
    ``abs_action``: the actions converted to absolute ones by ``env``'s converter (the simulator the file
    was recorded in)."""
    path = Path(path).expanduser()
    out = Path(out).expanduser() if out else default_out(path, mask, abs_action)
    if out.exists() and not overwrite:  # refused before reading the whole file
        raise FileExistsError(f"out: {out} already exists; pass overwrite=true to replace it")
    info = read_info(path)
    info.select(mask)  # a wrong filter fails before the converter loads a simulator
    convert = None
    if abs_action:
        spec = get_env_spec(env)
        if spec.make_action_converter is None:
            raise ValueError(f"env: abs_action needs an env that converts recorded actions, the {env} env does not")
        spec.check_installed()
        if info.env_args is None:
            raise DatasetError("abs_action: converting actions needs the file's env_args (the controller), got none")
        convert = spec.make_action_converter(info.env_args, {"absolute_actions": True})
    buffer = read_robomimic(path, obs_keys, mask, convert, progress)
    saved = buffer.save(out, overwrite=overwrite)
    keys = ", ".join(f"{k} {a.shape[1:]} {a.dtype}" for k, a in buffer.data.items())
    print(f"imported {buffer.n_episodes} demos ({buffer.n_steps} steps; {keys}) from {path}\nwrote {saved}")
    return saved


@hydra.main(config_path=str(config_dir()), config_name="import_robomimic", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    obs_keys = OmegaConf.to_container(cfg.obs_keys) if cfg.obs_keys is not None else None
    import_file(cfg.path, cfg.out or None, obs_keys, cfg.mask, bool(cfg.abs_action), bool(cfg.overwrite), env=cfg.env)


if __name__ == "__main__":
    main()
