"""Run functions on N local processes joined in a torch.distributed group (tests, self-check, benchmarks).

`RankPool` starts the ranks once and runs any number of functions on all of them, so the seconds each
process spends importing torch and MONAI are paid once; `spawn` is the one-shot form. The parent holds the
rendezvous store on a port the OS picked, so there is no free-port race. A rank that raises, dies or hangs
past the deadline fails the run with that rank's traceback, and the pool is shut down. (Training runs
under torchrun instead: see engines.partition.cli.)
"""

from __future__ import annotations

import contextlib
import datetime
import os
import queue as queue_module
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# glibc keeps freed blocks below its self-raising mmap threshold (up to 32 MiB) in the heap, so a CPU rank's
# RSS would keep every freed activation of that size; 1 MiB hands them back. A MALLOC_* value set by the
# user wins (benchmarks/partition_memory.py measures both).
CPU_RANK_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


@contextlib.contextmanager
def cpu_rank_env(backend: str) -> Iterator[dict[str, str]]:
    """Within the block, processes started for `backend` "gloo" inherit CPU_RANK_ENV (what the user has not
    set themselves); yields what was added."""
    added = {k: v for k, v in CPU_RANK_ENV.items() if backend == "gloo" and k not in os.environ}
    os.environ.update(added)
    try:
        yield added
    finally:
        for key in added:
            os.environ.pop(key, None)


def _serve(rank: int, world_size: int, port: int, backend: str, threads: int, collective_timeout_s: float,
           tasks: Any, results: Any) -> None:
    """A rank's loop: join the group, then run each (fn, args) from `tasks` until None arrives."""
    try:
        torch.set_num_threads(threads)
        if backend == "nccl":
            torch.cuda.set_device(rank)
        timeout = datetime.timedelta(seconds=collective_timeout_s)
        store = dist.TCPStore("127.0.0.1", port, world_size, is_master=False, timeout=timeout)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
    except BaseException:
        results.put((rank, False, traceback.format_exc()))
        return
    try:
        while (task := tasks.get()) is not None:
            fn, args = task
            try:
                results.put((rank, True, fn(*args)))
            except BaseException:
                results.put((rank, False, traceback.format_exc()))
    finally:
        dist.destroy_process_group()


class RankPool:
    """`world_size` processes in one process group, ready to run functions on every rank.

    Parameters
    ----------
    world_size : int
    backend : "gloo" or "nccl"
        NCCL puts rank r on GPU r; it needs a GPU per rank.
    threads : int
        torch threads per rank.
    collective_timeout_s : float
        A collective waiting longer than this on a peer fails instead of hanging.
    """

    def __init__(self, world_size: int, *, backend: str = "gloo", threads: int = 1,
                 collective_timeout_s: float = 60) -> None:
        if backend == "nccl" and world_size > torch.cuda.device_count():
            raise ValueError(f"NCCL needs one GPU per rank: {world_size} ranks, "
                             f"{torch.cuda.device_count()} GPUs")
        ctx = mp.get_context("spawn")
        self.world_size = world_size
        self._results = ctx.Queue()
        self._tasks = [ctx.Queue() for _ in range(world_size)]
        self._store = dist.TCPStore("127.0.0.1", 0, world_size, is_master=True, wait_for_workers=False)
        self._procs = [ctx.Process(target=_serve, daemon=True,
                                   args=(rank, world_size, self._store.port, backend, threads,
                                         collective_timeout_s, self._tasks[rank], self._results))
                       for rank in range(world_size)]
        with cpu_rank_env(backend):
            for proc in self._procs:
                proc.start()
        self.alive = True

    def run(self, fn: Callable, *args: Any, timeout_s: float = 300) -> list[Any]:
        """Call ``fn(*args)`` on every rank at once; return the results by rank.

        `fn` must be a module-level function (the ranks import it by name).

        Raises
        ------
        RuntimeError
            A rank raised or died (its traceback or exit code in the message); the pool is closed.
        TimeoutError
            Not every rank answered within `timeout_s`; the pool is closed.
        """
        if not self.alive:
            raise RuntimeError("this RankPool was closed")
        for tasks in self._tasks:
            tasks.put((fn, args))
        deadline = time.monotonic() + timeout_s
        found: dict[int, Any] = {}
        try:
            while len(found) < self.world_size:
                try:
                    rank, ok, value = self._results.get(timeout=0.5)
                except queue_module.Empty:
                    dead = [r for r, p in enumerate(self._procs) if p.exitcode is not None and r not in found]
                    if dead:
                        code = self._procs[dead[0]].exitcode
                        raise RuntimeError(f"rank {dead[0]} died (exit code {code})") from None
                    if time.monotonic() > deadline:
                        missing = sorted(set(range(self.world_size)) - set(found))
                        raise TimeoutError(f"ranks {missing} did not finish within {timeout_s:.0f} s") \
                            from None
                    continue
                if not ok:
                    raise RuntimeError(f"rank {rank} failed:\n{value}")
                found[rank] = value
        except BaseException:
            self.close(graceful=False)
            raise
        return [found[rank] for rank in range(self.world_size)]

    def close(self, *, graceful: bool = True) -> None:
        """Stop the ranks: ask them to leave, then terminate whoever is still there after a few seconds."""
        if not self.alive:
            return
        self.alive = False
        if graceful:
            for tasks in self._tasks:
                tasks.put(None)
            for proc in self._procs:
                proc.join(timeout=10)
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()

    def __enter__(self) -> RankPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spawn(fn: Callable, world_size: int, args: tuple = (), *, backend: str = "gloo", timeout_s: float = 300,
          threads: int = 1, collective_timeout_s: float = 60) -> list[Any]:
    """Call ``fn(*args)`` once on `world_size` new ranks and return their results by rank (see RankPool)."""
    with RankPool(world_size, backend=backend, threads=threads,
                  collective_timeout_s=collective_timeout_s) as pool:
        return pool.run(fn, *args, timeout_s=timeout_s)


def cpu_threads_per_rank(world_size: int) -> int:
    """Threads each of `world_size` local CPU ranks can use without oversubscribing this machine."""
    return max(1, len(os.sched_getaffinity(0)) // world_size)
