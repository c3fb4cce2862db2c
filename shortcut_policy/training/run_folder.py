"""A run folder belongs to one live training at a time, and a finished run in it is never overwritten
unless the user asks.

Ownership is an exclusive ``flock`` on ``<run_dir>/.lock``: the operating system drops it when the
process ends, however it ends, so a crash or ``kill -9`` leaves no stale lock to clear by hand.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Iterable

LOCK_FILE = ".lock"


class RunFolderBusy(OSError):
    """Another live process holds the run folder."""


class RunFolder:
    """``with RunFolder(run_dir):`` holds the folder for this process; a folder this made and left
    holding nothing but the lock (a refusal before any write) is removed on the way out."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None
        self._made = False

    def __enter__(self) -> "RunFolder":
        self._made = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock = self.run_dir / LOCK_FILE
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # a refused run removed the empty folder meanwhile
                self.run_dir.mkdir(parents=True, exist_ok=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderBusy(
                    f"run_dir: {self.run_dir} is in use by another training (pid {owner}); wait for it to end, or "
                    "choose another run_dir"
                ) from None
            except OSError as err:  # a filesystem without flock (some network mounts)
                os.close(fd)
                raise RunFolderBusy(f"run_dir: cannot lock {lock} ({err}); put runs on a local disk") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the lock file was removed (a refused run cleaning up) between open and flock: again
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def refuse_existing_run(self, files: Iterable[str], resume: bool, overwrite: bool) -> None:
        """A new training (not ``resume``) in a folder that holds a run's ``files`` is refused unless
        ``overwrite``: nothing a user trained is replaced without being asked."""
        if resume or overwrite:
            return
        found = [name for name in files if (self.run_dir / name).exists()]
        if found:
            raise FileExistsError(
                f"run_dir: {self.run_dir} already holds a run ({', '.join(found)}); train.resume=true continues it, "
                "train.overwrite=true replaces it, or choose another run_dir"
            )

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        try:
            if self._made and [p.name for p in self.run_dir.iterdir()] == [LOCK_FILE]:
                (self.run_dir / LOCK_FILE).unlink(missing_ok=True)  # still held: a newcomer re-checks the inode
                self.run_dir.rmdir()
        except OSError:  # another process is starting in the folder meanwhile: it keeps it
            pass
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
