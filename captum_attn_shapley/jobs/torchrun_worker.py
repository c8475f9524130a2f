"""One process of a dataset job under torchrun (or SLURM's ``srun``): computes the shards ``i`` with
``i % WORLD_SIZE == RANK`` that are not done yet.

    torchrun --standalone --nproc_per_node 4 --max-restarts 3 \\
        -m captum_attn_shapley.jobs.torchrun_worker SPEC.json OUT_DIR

``SPEC.json`` is a :class:`~captum_attn_shapley.jobs.JobSpec` as JSON (``spec.to_json()``) or a job's
``manifest.json``. The split is static (it depends on the shard's index alone), so a restart of the group
recomputes only the unfinished shards and no shard is computed twice; the ranks need no process group.
Every rank checks the folder's manifest first (another job's results are refused) and writes it if it is
missing; the rank that finds every shard done writes ``_SUCCESS``. Only a TokenTCAV job on several ranks
forms a (gloo) process group, for two barriers: rank 0 trains the CAVs while the others wait, and writes
``tcav.json`` once every rank is done.
"""

import contextlib
import json
import os
import pathlib
import sys
from typing import Callable, Iterator, List, Optional, Sequence

from captum_attn_shapley.jobs._faults import maybe_crash
from captum_attn_shapley.jobs.shards import (
    MANIFEST,
    check_manifest,
    mark_success,
    plan_shards,
    run_shard,
    shard_path,
    write_manifest,
)
from captum_attn_shapley.jobs.spec import JobSpec

USAGE = "usage: python -m captum_attn_shapley.jobs.torchrun_worker SPEC.json OUT_DIR [--no-summary]"


def read_spec(path: str) -> JobSpec:
    r"""
    A job's spec from a file: :meth:`JobSpec.to_json`'s JSON or a job's ``manifest.json``.

    Args:
        path (str): The file.

    Returns:
        JobSpec: The spec.

    Raises:
        ValueError: If the file is missing or holds neither.
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise ValueError(f"SPEC.json {path!r} is not a file: write one with JobSpec(...).to_json().")
    data = json.loads(file.read_text())
    if isinstance(data, dict) and isinstance(data.get("spec"), dict):
        data = data["spec"]
    if not isinstance(data, dict):
        raise ValueError(f"SPEC.json {path!r} holds no job spec: write one with JobSpec(...).to_json().")
    return JobSpec.from_json(json.dumps(data))


def rank_shards(spec: JobSpec, out_dir: str, rank: int, world_size: int) -> List[int]:
    r"""
    The shards of one rank that are still to compute: ``i % world_size == rank``, without a final file.

    Args:
        spec (JobSpec): The job.
        out_dir (str): The job's folder.
        rank (int): This process's rank.
        world_size (int): The number of processes.

    Returns:
        list[int]: Shard indices, in order.
    """
    return [
        s.index
        for s in plan_shards(spec)
        if s.index % world_size == rank and not shard_path(out_dir, s.index).is_file()
    ]


def main(argv: Optional[Sequence[str]] = None) -> int:
    r"""
    Runs this rank's share of the job (``RANK`` and ``WORLD_SIZE`` from torchrun's environment; 0 and 1
    without them).

    Args:
        argv (sequence of str, optional): ``[SPEC.json, OUT_DIR]``, and ``--no-summary`` to leave a
                    TokenTCAV job's ``tcav.json`` to the caller. Default: ``sys.argv[1:]``

    Returns:
        int: The exit status (2 for a usage error).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    summary = "--no-summary" not in args
    args = [a for a in args if a != "--no-summary"]
    if len(args) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        spec = read_spec(args[0])
        out = pathlib.Path(args[1]).resolve()
        check_manifest(spec, out, overwrite=False)
    except ValueError as err:
        print(f"torchrun_worker: {err}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MANIFEST).is_file():
        # any rank may find it missing; each writes the same manifest atomically (the first start time kept)
        write_manifest(spec, out)
    with _group(spec, world_size) as barrier:
        if spec.kind == "tcav" and rank == 0:
            from captum_attn_shapley.jobs.tcav import prepare_tcav

            prepare_tcav(spec)  # the CAVs, trained once (or found in the cache) before any rank loads them
        barrier()
        for index in rank_shards(spec, str(out), rank, world_size):
            maybe_crash(index)
            run_shard(spec, index, out)
        barrier()
    complete = mark_success(spec, out)
    if spec.kind == "tcav" and complete and rank == 0 and summary:
        from captum_attn_shapley.jobs.tcav import summarize_tcav

        summarize_tcav(spec, out)
    return 0


@contextlib.contextmanager
def _group(spec: JobSpec, world_size: int) -> Iterator[Callable[[], None]]:
    """A barrier across the ranks: a gloo process group for a TokenTCAV job on several ranks (rank 0 trains
    the CAVs while the others wait; all wait for each other before the summary), nothing otherwise."""
    if spec.kind != "tcav" or world_size == 1:
        yield lambda: None
        return
    import torch.distributed as dist

    dist.init_process_group("gloo")
    try:
        yield dist.barrier
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
