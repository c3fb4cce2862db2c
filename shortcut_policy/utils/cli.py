"""What a command prints when the user's input is wrong: one line naming the field, not a traceback."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable

from omegaconf.errors import OmegaConfBaseException

# Errors the library raises for a user's input or files, each message naming the field or the path.
# Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError, OmegaConfBaseException)


def one_line_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user error as ``error: <message>`` and exit 1; ``HYDRA_FULL_ERROR=1`` shows the traceback."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {describe(err)}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper


def describe(err: BaseException) -> str:
    """The message on one line; omegaconf's (a wrong type, an unknown key) reduced to its key and reason."""
    if isinstance(err, OmegaConfBaseException):
        key = getattr(err, "full_key", None)
        reason = str(getattr(err, "msg", None) or err).strip().splitlines()[0]
        return f"{key}: {reason}" if key else reason
    return " ".join(str(err).split()) or type(err).__name__
