"""The local engine of dataset jobs: the pending shards in this process, or in N worker processes
(``concurrent.futures.ProcessPoolExecutor``, spawn context), with a progress bar."""

import concurrent.futures
import multiprocessing
import pathlib
from typing import List, Union

from tqdm.auto import tqdm

from captum_attn_shapley.jobs.shards import mark_success, pending_shards, plan_shards, run_shard
from captum_attn_shapley.jobs.spec import JobSpec


def _progress(spec: JobSpec, todo: List[int], progress: bool) -> "tqdm[None]":
    shards = plan_shards(spec)
    total = sum(s.stop - s.start for s in shards)
    done = total - sum(shards[i].stop - shards[i].start for i in todo)
    bar: "tqdm[None]" = tqdm(total=total, initial=done, unit="ex", desc="explain-dataset", disable=not progress)
    bar.set_postfix_str(f"shards {len(shards) - len(todo)}/{len(shards)}")
    return bar


def run(spec: JobSpec, out_dir: Union[str, pathlib.Path], workers: int = 1, progress: bool = True) -> List[int]:
    r"""
    Computes the job's pending shards on this machine and writes ``_SUCCESS`` when all are done.

    With ``workers=1`` the shards run in this process, one after the other; with more, in that many
    worker processes started with the spawn context (each computes whole shards with
    ``spec.threads_per_worker`` torch threads, so the results are bit-identical to one process). The
    manifest must have been checked and written (:func:`~captum_attn_shapley.jobs.explain_dataset` does).

    Args:
        spec (JobSpec): The job.
        out_dir (str or Path): The job's folder.
        workers (int): Worker processes. Default: 1
        progress (bool): Show a progress bar (examples/s, shards done). Default: True

    Returns:
        list[int]: The shards computed by this call.

    Examples::

        >>> run(spec, "out", workers=2)
        [0, 1, 2]
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}.")
    todo = pending_shards(spec, out_dir)
    shards = plan_shards(spec)
    bar = _progress(spec, todo, progress)
    done_count = len(shards) - len(todo)
    try:
        if workers == 1 or len(todo) <= 1:
            for index in todo:
                run_shard(spec, index, out_dir)
                done_count += 1
                bar.update(shards[index].stop - shards[index].start)
                bar.set_postfix_str(f"shards {done_count}/{len(shards)}")
        else:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
                futures = {pool.submit(run_shard, spec, index, str(out_dir)): index for index in todo}
                for future in concurrent.futures.as_completed(futures):
                    future.result()
                    index = futures[future]
                    done_count += 1
                    bar.update(shards[index].stop - shards[index].start)
                    bar.set_postfix_str(f"shards {done_count}/{len(shards)}")
    finally:
        bar.close()
    mark_success(spec, out_dir)
    return todo
