"""Atomic writes: a reader never sees half a JSON, a truncated plot or half a checkpoint, and a killed
write's temp file is removed by the next write of the same path."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable


def this_host() -> str:
    """This machine's name as temp names carry it (letters and digits only, so ``-`` can separate fields)."""
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


def temp_prefix(path: Path, kind: str = "tmp") -> str:
    """The name every temp file or folder written for ``path`` starts with: this machine and process are
    in it, so that only writers known to be dead have their temps removed; ``kind`` "old" names a
    previous version moved aside while a new one is renamed in."""
    return f".{path.name}.{kind}-{this_host()}-{os.getpid()}-"


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temp files and folders that writes of ``path`` by processes of this machine that are no
    longer alive left behind (a killed write leaves its temp: a train state is tens of MB), and a
    moved-aside previous version once ``path`` itself is back in place. Temps of other machines sharing
    the folder are left alone. Returns what was removed."""
    removed = []
    kinds = ("tmp", "old") if path.exists() else ("tmp",)  # without ``path``, a moved-aside one is all there is
    for kind in kinds:
        start = f".{path.name}.{kind}-{this_host()}-"
        try:
            candidates = list(path.parent.glob(f"{glob.escape(start)}*"))
        except OSError:
            return removed
        for temp in candidates:
            pid = temp.name[len(start):].split("-", 1)[0]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            try:
                if temp.is_dir() and not temp.is_symlink():
                    shutil.rmtree(temp)
                else:
                    temp.unlink(missing_ok=True)
            except OSError:  # not ours to remove (another user's), or gone meanwhile
                continue
            removed.append(temp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then rename it into place; temps that
    killed writes of ``path`` left behind are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, data: Any) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    return atomic_write(path, write)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def complete_lines(path: str | os.PathLike) -> list[str]:
    """The complete lines of a file that another process may be appending to: a last line without
    its newline is still being written and is left out. No file yet: no lines."""
    try:
        text = Path(path).read_text(errors="replace")  # a read may end inside a character being written
    except OSError:
        return []
    return text.split("\n")[:-1]
