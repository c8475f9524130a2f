"""The local engine of dataset jobs: the pending shards in this process, or in N worker processes
(``concurrent.futures.ProcessPoolExecutor``, spawn context), with a progress bar."""

import concurrent.futures
import multiprocessing
import pathlib
from concurrent.futures.process import BrokenProcessPool
from typing import List, Union

from tqdm.auto import tqdm

from captum_attn_shapley.jobs._faults import maybe_crash
from captum_attn_shapley.jobs.shards import (
    mark_success,
    pending_shards,
    plan_shards,
    remove_partial_files,
    run_shard,
)
from captum_attn_shapley.jobs.spec import JobSpec


def _worker(spec: JobSpec, index: int, out_dir: str) -> int:
    """One shard in a worker process (where a test may inject a crash)."""
    maybe_crash(index)
    run_shard(spec, index, out_dir)
    return index


def _in_pool(spec: JobSpec, out_dir: str, todo: List[int], workers: int, done: "_Bar") -> None:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
        futures = [pool.submit(_worker, spec, index, out_dir) for index in todo]
        for future in concurrent.futures.as_completed(futures):
            done.shard(future.result())


class _Bar:
    """The progress bar: examples done (examples/s) and shards done."""

    def __init__(self, spec: JobSpec, todo: List[int], progress: bool) -> None:
        self.shards = plan_shards(spec)
        total = sum(s.stop - s.start for s in self.shards)
        self.done = len(self.shards) - len(todo)
        initial = total - sum(self.shards[i].stop - self.shards[i].start for i in todo)
        self.bar = tqdm(total=total, initial=initial, unit="ex", desc="explain-dataset", disable=not progress)
        self.bar.set_postfix_str(f"shards {self.done}/{len(self.shards)}")

    def shard(self, index: int) -> None:
        self.done += 1
        self.bar.update(self.shards[index].stop - self.shards[index].start)
        self.bar.set_postfix_str(f"shards {self.done}/{len(self.shards)}")


def run(
    spec: JobSpec, out_dir: Union[str, pathlib.Path], workers: int = 1, progress: bool = True, max_retries: int = 1
) -> List[int]:
    r"""
    Computes the job's pending shards on this machine and writes ``_SUCCESS`` when all are done.

    With ``workers=1`` the shards run in this process, one after the other; with more, in that many
    worker processes started with the spawn context (each computes whole shards with
    ``spec.threads_per_worker`` torch threads, so the results are bit-identical to one process). If a
    worker process dies (killed, out of memory), the pool breaks: the shards it did not finish are
    computed again in a fresh pool, up to ``max_retries`` times. An error raised by a shard stops the run;
    finished shards stay and a rerun resumes. The manifest must have been checked and written
    (:func:`~captum_attn_shapley.jobs.explain_dataset` does).

    Args:
        spec (JobSpec): The job.
        out_dir (str or Path): The job's folder.
        workers (int): Worker processes. Default: 1
        progress (bool): Show a progress bar (examples/s, shards done). Default: True
        max_retries (int): Fresh pools after a worker process died. Default: 1

    Returns:
        list[int]: The shards computed by this call.

    Examples::

        >>> run(spec, "out", workers=2)
        [0, 1, 2]
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}.")
    todo = pending_shards(spec, out_dir)
    bar = _Bar(spec, todo, progress)
    try:
        if workers == 1 or len(todo) <= 1:
            for index in todo:
                run_shard(spec, index, out_dir)
                bar.shard(index)
        else:
            for attempt in range(max_retries + 1):
                left = pending_shards(spec, out_dir)
                if not left:
                    break
                try:
                    _in_pool(spec, str(out_dir), left, workers, bar)
                except BrokenProcessPool:
                    remove_partial_files(out_dir)
                    if attempt == max_retries:
                        raise RuntimeError(
                            f"A worker process died {max_retries + 1} time(s); the finished shards are kept. "
                            "Run the job again to resume it (or give max_retries= more)."
                        ) from None
    finally:
        bar.bar.close()
    mark_success(spec, out_dir)
    return todo
