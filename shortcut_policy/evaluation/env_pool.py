"""Many episodes' environments stepped together, in this process or spread over worker processes.

A rollout asks the pool to reset, step or render some of its environments at once. With workers, each
process owns a contiguous share of the environments and steps its share while the others step theirs,
so an environment whose step or render is slow (MuJoCo, cameras) does not serialise the episodes. The
commands are the same in both cases (``_serve``), so the two kinds of pool cannot drift apart.
"""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..utils.checks import check_workers


def _serve(envs: Mapping[int, Any], command: str, args: Mapping[int, Any]) -> dict[int, Any]:
    """Run one command on the environments named in ``args``: ``reset`` (args: seeds), ``step``
    (args: actions) or ``render`` (args ignored)."""
    if command == "reset":
        return {i: envs[i].reset(seed=int(seed))[0] for i, seed in args.items()}
    if command == "step":
        return {i: envs[i].step(action) for i, action in args.items()}
    if command == "render":
        return {i: envs[i].render() for i in args}
    raise ValueError(f"unknown command {command!r}")


def _worker(conn, make: Callable[..., Any], kwargs_by_id: dict[int, dict]) -> None:
    """A worker process: build its environments, then answer commands until ``close``."""
    envs: dict[int, Any] = {}
    try:
        for i, kwargs in kwargs_by_id.items():  # one by one, so that a failure closes those already made
            envs[i] = make(**kwargs)
        conn.send(("ok", None))
        while True:
            command, args = conn.recv()
            if command == "close":
                break
            conn.send(("ok", _serve(envs, command, args)))
    except (EOFError, KeyboardInterrupt):  # the parent went away
        pass
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        for env in envs.values():
            env.close()
        conn.close()


class EnvPool:
    """``len(kwargs)`` environments, ``make(**kwargs[i])`` each; ``workers`` 0 keeps them in this process."""

    def __init__(self, make: Callable[..., Any], kwargs: Sequence[dict], workers: int = 0) -> None:
        self.workers = min(check_workers(workers), len(kwargs))
        self._local: dict[int, Any] = {}
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        self._owner: dict[int, int] = {}
        try:
            if self.workers == 0:
                for i, kw in enumerate(kwargs):
                    self._local[i] = make(**kw)
            else:
                self._start_workers(make, kwargs)
        except BaseException:
            self.close()
            raise

    def _start_workers(self, make: Callable[..., Any], kwargs: Sequence[dict]) -> None:
        context = multiprocessing.get_context("spawn")  # forking a process whose torch runs threads can hang
        for w, share in enumerate(np.array_split(np.arange(len(kwargs)), self.workers)):
            parent, child = context.Pipe()
            self._conns.append(parent)
            proc = context.Process(target=_worker, args=(child, make, {int(i): kwargs[i] for i in share}), daemon=True)
            try:
                proc.start()  # pickles ``make``: a module-level function, not a lambda or a closure
            finally:
                child.close()
            self._procs.append(proc)
            self._owner.update({int(i): w for i in share})
        for w in range(self.workers):
            self._receive(w)

    def _receive(self, w: int) -> Any:
        try:
            status, payload = self._conns[w].recv()
        except EOFError:
            raise RuntimeError(f"rollout worker {w} died (killed, or out of memory?)") from None
        if status == "error":
            raise RuntimeError(f"rollout worker {w} failed:\n{payload}")
        return payload

    def _call(self, command: str, args: Mapping[int, Any]) -> dict[int, Any]:
        if not self._conns:
            return _serve(self._local, command, args)
        by_worker: dict[int, dict[int, Any]] = {}
        for i, arg in args.items():
            by_worker.setdefault(self._owner[i], {})[i] = arg
        for w, share in by_worker.items():  # every worker starts before any answer is awaited
            self._conns[w].send((command, share))
        out: dict[int, Any] = {}
        for w in by_worker:
            out.update(self._receive(w))
        return out

    def reset(self, seeds: Mapping[int, int]) -> dict[int, dict]:
        """Observation of each environment ``i`` after ``reset(seed=seeds[i])``."""
        return self._call("reset", seeds)

    def step(self, actions: Mapping[int, np.ndarray]) -> dict[int, tuple]:
        """``(obs, reward, terminated, truncated, info)`` of each environment given an action."""
        return self._call("step", actions)

    def render(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        return self._call("render", {i: None for i in ids})

    def close(self) -> None:
        for env in self._local.values():
            env.close()
        self._local = {}
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []

    def __enter__(self) -> "EnvPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
