"""Independent jobs (training runs, evaluations) a few at a time, each in its own process.

On a small CPU machine several single-threaded runs side by side do more work per second than one
run on all the cores: this network's small tensors leave the second core idle much of the time
(measured: docs/results/train_throughput.md). Each worker gets ``cpu_count // jobs`` torch threads and
writes its output, and the traceback of a failure, to its own log file.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm


def check_jobs(jobs: Any) -> int:
    """``jobs``, the number of runs trained and evaluated side by side, if it is an integer >= 1."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: expected an integer >= 1 (runs trained and evaluated side by side), got {jobs!r}")
    return jobs


@dataclass
class Job:
    """``fn(*args, progress=...)``; in a worker process its output goes to ``log``."""

    label: str
    log: Path
    fn: Callable[..., Any]
    args: tuple = field(default_factory=tuple)


def in_process(n_at_once: int, n_jobs: int) -> bool:
    """Whether ``run_jobs`` runs its jobs here, one after another, rather than in worker processes."""
    return n_at_once == 1 or n_jobs <= 1


def run_jobs(
    jobs: list[Job],
    n_at_once: int,
    desc: str,
    progress: bool = True,
    total: int | None = None,
    done_so_far: Callable[[], int] | None = None,
) -> list[Any]:
    """Results of ``jobs`` in their order. With ``n_at_once`` 1 (or one job) they run here, one after
    another, printing as usual; otherwise in spawned processes. The bar counts ``done_so_far()`` out
    of ``total`` (default: jobs finished). The first failure stops the others (their runs resume)."""
    check_jobs(n_at_once)
    if in_process(n_at_once, len(jobs)):
        results = []
        for job in jobs:
            print(f"[{job.label}]")
            results.append(job.fn(*job.args, progress=progress))
        return results
    n_at_once = min(n_at_once, len(jobs))
    cores = os.cpu_count() or 1
    threads = max(1, cores // n_at_once)
    print(f"{desc}: {len(jobs)} jobs, {n_at_once} at a time, {threads} thread(s) each")
    if n_at_once > cores:
        print(f"  note: {n_at_once} processes on {cores} cores share them; jobs <= {cores} is faster on a CPU")
    for job in jobs:
        print(f"  [{job.label}] output in {job.log}")
    context = multiprocessing.get_context("spawn")  # forking a process whose torch already runs threads can hang
    pool = ProcessPoolExecutor(max_workers=n_at_once, mp_context=context)
    futures: dict[Future, int] = {pool.submit(in_worker, job.fn, job.args, threads, job.log): i for i, job in enumerate(jobs)}
    results: list[Any] = [None] * len(jobs)
    pending = set(futures)
    try:
        with tqdm(total=total if total is not None else len(jobs), desc=desc, disable=not progress) as bar:
            while pending:
                done, pending = wait(pending, timeout=5.0, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=futures.get):
                    job = jobs[futures[future]]
                    try:
                        results[futures[future]] = future.result()
                    except BrokenProcessPool as err:
                        raise RuntimeError(f"a worker process died (killed, or out of memory?) while {desc}; "
                                           f"see the logs above, e.g. {job.log}") from err
                    except Exception as err:
                        raise RuntimeError(f"[{job.label}] failed; its output and traceback are in {job.log}") from err
                    tqdm.write(f"[{job.label}] done")
                bar.n = done_so_far() if done_so_far else len(jobs) - len(pending)
                bar.refresh()
    except BaseException:
        stop(pool)
        raise
    pool.shutdown()
    return results


def in_worker(fn: Callable[..., Any], args: tuple, threads: int, log: Path) -> Any:
    """``fn(*args)`` in a worker process with ``threads`` threads, its output appended to ``log``."""
    torch.set_num_threads(threads)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", buffering=1) as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):  # line by line
        try:
            return fn(*args, progress=False)
        except BaseException:
            traceback.print_exc()  # into the log the error message points to
            raise


def stop(pool: ProcessPoolExecutor) -> None:
    """Drop the jobs not started and end the running ones now, rather than wait for them (hours, for
    training runs; a stopped training run resumes from its last checkpoint)."""
    # ProcessPoolExecutor has no public way to end running workers before Python 3.14's terminate_workers()
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
