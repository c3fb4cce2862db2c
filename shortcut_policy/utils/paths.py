"""Where the library finds its shipped configs, wherever it is installed.

In a wheel the top-level ``configs/`` folder is installed as ``shortcut_policy/configs``; in a source
checkout (editable install) it sits next to the package. Both are looked up
here, so hydra entry points work the same in either case.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # shortcut_policy/


def config_dir() -> Path:
    """The folder holding the hydra yaml configs (``train.yaml`` and its groups)."""
    candidates = [_PACKAGE_DIR / "configs", _PACKAGE_DIR.parent / "configs"]
    for candidate in candidates:
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        "shortcut_policy configs not found: expected train.yaml in one of "
        + ", ".join(str(c) for c in candidates)
    )


def options_suffix(options: Mapping[str, Any]) -> str:
    """Options as a file name says them: ``_key=value`` for each, in key order (empty for none)."""
    return "".join(f"_{key}={value}" for key, value in sorted(options.items()))


def datasets_dir() -> Path:
    """Default folder for demonstration stores: ``$SHORTCUT_POLICY_DATA`` or ``./datasets``."""
    return Path(os.environ.get("SHORTCUT_POLICY_DATA", "datasets")).expanduser()
