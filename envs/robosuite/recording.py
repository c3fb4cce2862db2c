"""robosuite's demonstrations go through a robomimic HDF5 file, as a user's would.

The expert acts with delta actions; each step also records the simulator state, and the file keeps the
env's ``env_args``, as robomimic's own files do. The store is then imported from the file (converting to
absolute actions when the env's options ask), so the library's own demonstrations take the path a
downloaded robomimic dataset takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shortcut_policy.data.robomimic import read_robomimic, write_robomimic


class RobomimicFileRecorder:
    """The ``EnvSpec.demo_recorder`` of robosuite (see the module docstring)."""

    make_options = {"absolute_actions": False}  # the expert's actions are deltas; an import converts them

    def step_data(self, env: Any) -> dict[str, np.ndarray]:
        return {"states": env.unwrapped.flat_state()}  # before the step, as robomimic records it

    def files(self, out: Path) -> list[Path]:
        return [Path(out).with_suffix(".hdf5")]

    def finish(self, spec: Any, env: Any, episodes: list[dict[str, np.ndarray]], out: Path, keys: list[str],
               overwrite: bool, progress: bool) -> Any:
        """Write the episodes as a robomimic file, then read the store from it."""
        [hdf5] = self.files(out)
        recorded = [{"actions": e["action"], "states": e["states"], "obs": {k: e[k] for k in keys}} for e in episodes]
        write_robomimic(hdf5, recorded, env.unwrapped.env_args, masks={"train": range(len(recorded))}, overwrite=overwrite)
        convert = spec.make_action_converter
        make_converter = (lambda args: convert(args, spec.options)) if convert else None  # noqa: E731
        buffer = read_robomimic(hdf5, keys, make_converter=make_converter, progress=progress)
        print(f"wrote {hdf5} (robomimic's layout; the store is imported from it)")
        return buffer
