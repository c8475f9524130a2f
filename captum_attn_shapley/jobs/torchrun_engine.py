"""The torchrun engine of dataset jobs: ``workers`` processes on this machine started by PyTorch's elastic
launcher (``python -m torch.distributed.run``, the module behind ``torchrun``), each computing the pending
shards ``i`` with ``i % workers == rank`` (:mod:`captum_attn_shapley.jobs.torchrun_worker`); the group
is restarted up to ``max_restarts`` times when a process fails, and a restart redoes only the unfinished
shards. Nothing beyond torch is needed, and the ranks form no process group (they share nothing but the
folder).

On several machines (SLURM), run the worker module with torchrun yourself (see
:doc:`the dataset jobs guide </jobs>`)::

    srun --nodes 4 --ntasks-per-node 1 torchrun --nnodes 4 --nproc-per-node 8 --max-restarts 3 \\
        --rdzv-backend c10d --rdzv-endpoint "$HEAD:29500" --rdzv-id "$SLURM_JOB_ID" \\
        -m captum_attn_shapley.jobs.torchrun_worker spec.json /shared/out
"""

import os
import pathlib
import shutil
import subprocess
import sys
import time
from typing import List, Sequence, Union

from tqdm.auto import tqdm

from captum_attn_shapley._utils.io import atomic_write_text
from captum_attn_shapley.jobs.shards import (
    mark_success,
    pending_shards,
    plan_shards,
    remove_partial_files,
    shard_path,
)
from captum_attn_shapley.jobs.spec import JobSpec

#: The launcher's folder inside the job's folder (the spec it reads and its log).
TORCHRUN_DIR = ".torchrun"
#: The worker module each process runs.
WORKER_MODULE = "captum_attn_shapley.jobs.torchrun_worker"


def command(
    spec_path: str, out_dir: str, workers: int, max_restarts: int, launcher_args: Sequence[str] = ()
) -> List[str]:
    r"""
    The launcher's command line: ``python -m torch.distributed.run --standalone ...`` with this
    interpreter (the same as ``torchrun``, without relying on the script being on ``PATH``); the workers
    leave a TokenTCAV job's summary to :func:`~captum_attn_shapley.jobs.explain_dataset`
    (``--no-summary``).

    Args:
        spec_path (str): The spec's JSON file.
        out_dir (str): The job's folder.
        workers (int): Processes (``--nproc-per-node``).
        max_restarts (int): Restarts of the group after a failure (``--max-restarts``).
        launcher_args (sequence of str): Further options of torchrun, before the module. Default: none

    Returns:
        list[str]: The command.
    """
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(workers),
        "--max-restarts", str(max_restarts), *launcher_args, "-m", WORKER_MODULE, spec_path, out_dir,
        "--no-summary",
    ]  # fmt: skip


def _check_options(workers: object, max_restarts: object, launcher_args: object) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}.")
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise ValueError(
            f"max_restarts must be an integer, 0 or more (restarts of the processes after a failure), got "
            f"{max_restarts!r}."
        )
    if isinstance(launcher_args, str) or not all(isinstance(a, str) for a in launcher_args):  # type: ignore[attr-defined]
        raise ValueError(
            f"launcher_args must be a list of strings such as ['--monitor-interval', '1'], got {launcher_args!r}."
        )


def run(
    spec: JobSpec,
    out_dir: Union[str, pathlib.Path],
    workers: int = 1,
    max_restarts: int = 3,
    progress: bool = True,
    launcher_args: Sequence[str] = (),
    keep_log: bool = False,
) -> List[int]:
    r"""
    Computes the job's pending shards in ``workers`` processes started by torchrun and writes
    ``_SUCCESS`` when all are done.

    Writes the spec to ``OUT_DIR/.torchrun/spec.json``, runs
    ``python -m torch.distributed.run --standalone --nproc-per-node WORKERS --max-restarts MAX_RESTARTS
    -m captum_attn_shapley.jobs.torchrun_worker SPEC OUT_DIR`` with the launcher's output in
    ``OUT_DIR/.torchrun/launcher.log`` (deleted after a successful job unless ``keep_log``), and follows
    the shard files with a progress bar. Rank ``r`` computes the shards ``i % workers == r``; when a
    process fails, torchrun restarts all of them (up to ``max_restarts`` times) and they compute only
    the shards not yet done. The manifest must have been checked and written
    (:func:`~captum_attn_shapley.jobs.explain_dataset` does).

    Args:
        spec (JobSpec): The job.
        out_dir (str or Path): The job's folder.
        workers (int): Processes on this machine. Default: 1
        max_restarts (int): Restarts of the group after a failure. Default: 3
        progress (bool): Show a progress bar (examples/s, shards done). Default: True
        launcher_args (sequence of str): Further torchrun options, e.g. ``["--monitor-interval", "1"]``.
        keep_log (bool): Keep ``OUT_DIR/.torchrun`` after a successful job. Default: False

    Returns:
        list[int]: The shards computed by this call.

    Raises:
        RuntimeError: If the launcher failed (after its restarts); the message ends with its log.

    Examples::

        >>> from captum_attn_shapley.jobs import torchrun_engine
        >>> torchrun_engine.run(spec, "out", workers=2)
        [0, 1, 2]
    """
    _check_options(workers, max_restarts, launcher_args)
    out = pathlib.Path(out_dir).resolve()
    todo = pending_shards(spec, out)
    if todo:
        folder = out / TORCHRUN_DIR
        folder.mkdir(parents=True, exist_ok=True)
        spec_path = folder / "spec.json"
        atomic_write_text(spec_path, spec.to_json())
        log = folder / "launcher.log"
        args = command(str(spec_path), str(out), workers, max_restarts, list(launcher_args))
        with open(log, "w") as stream:
            process = subprocess.Popen(args, stdout=stream, stderr=subprocess.STDOUT, env=dict(os.environ))
            status = _follow(process, spec, out, todo, progress)
        remove_partial_files(out)
        if status != 0:
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(
                f"torchrun exited with status {status} after up to {max_restarts} restarts; finished shards "
                f"are kept and a rerun computes the rest. Its log ({log}) ends with:\n{tail}"
            )
        if not keep_log:
            shutil.rmtree(folder, ignore_errors=True)
    mark_success(spec, out)
    return todo


def _follow(
    process: "subprocess.Popen[bytes]", spec: JobSpec, out: pathlib.Path, todo: List[int], progress: bool
) -> int:
    """Waits for the launcher, updating the progress bar as shard files appear; returns its status."""
    shards = plan_shards(spec)
    total = sum(s.stop - s.start for s in shards)
    initial = total - sum(shards[i].stop - shards[i].start for i in todo)
    bar = tqdm(total=total, initial=initial, unit="ex", desc="explain-dataset (torchrun)", disable=not progress)
    waiting = set(todo)
    bar.set_postfix_str(f"shards {len(shards) - len(waiting)}/{len(shards)}")
    try:
        while True:
            status = process.poll()
            finished = [index for index in sorted(waiting) if shard_path(out, index).is_file()]
            for index in finished:
                waiting.discard(index)
                bar.update(shards[index].stop - shards[index].start)
            if finished:
                bar.set_postfix_str(f"shards {len(shards) - len(waiting)}/{len(shards)}")
            if status is not None:
                return status
            time.sleep(0.5)
    except BaseException:
        process.terminate()
        process.wait()
        raise
    finally:
        bar.close()
