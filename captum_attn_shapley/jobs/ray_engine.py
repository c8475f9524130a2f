"""The Ray engine of dataset jobs: one Ray task per pending shard (Ray Core tasks, not Ray Data, whose
batches follow its blocks' boundaries), at most ``workers`` at a time, each retried when its worker dies.

Every task computes a whole shard with :func:`~captum_attn_shapley.jobs.run_shard`, which fixes the
shard's examples and the torch threads from the spec alone, so the files are bit-identical to the local
engine's. ``ray`` is imported here only, when the engine runs (the optional extra ``[jobs]``).

A local Ray instance (no ``address``) is started for the job and stopped after it. Its temporary, session
and spill folders live in the job's folder (``OUT_DIR/.ray``; a short link in the system temp folder points
there when the path is too long for Ray's sockets), its authentication token is kept in the environment
rather than written under the home folder, and its workers run at niceness 0 instead of Ray's 15.
"""

import contextlib
import os
import pathlib
import secrets
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Union

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

#: The install command of the optional dependency.
RAY_FIX = 'pip install "captum-attn-shapley[jobs]"'
#: The local Ray instance's folder inside the job's folder.
RAY_DIR = ".ray"
# Ray puts sockets at TEMP/session_<date>_<time>_<microseconds>_<pid>/sockets/plasma_store: 64 bytes
# after TEMP with a 7-digit pid, within the 107 bytes of a Unix socket path.
_SOCKET_SUFFIX = 70
_SOCKET_PATH_MAX = 107


def require_ray() -> Any:
    r"""
    Imports ``ray`` (the optional extra ``[jobs]``).

    Returns:
        module: ``ray``.

    Raises:
        ImportError: If Ray is not installed (the message names the install command).
    """
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"engine='ray' needs Ray: {RAY_FIX}") from err
    return ray


def _compute(spec_json: str, index: int, out_dir: str) -> int:
    """One shard, in a Ray worker (the task's body)."""
    maybe_crash(index)
    run_shard(JobSpec.from_json(spec_json), index, out_dir)
    return index


# Ray's authentication settings: when none is set, the local instance gets a token kept in the environment
# (Ray would otherwise write one to ~/.ray/auth_token). One token per process: Ray's driver caches it.
_AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
_TOKEN = secrets.token_hex(16)


@contextlib.contextmanager
def _environment(changes: Dict[str, str]) -> Iterator[None]:
    """Sets environment variables (those not set already) for the ``with`` block, then restores them and
    Ray's authentication variables (which ``ray.init`` sets) as they were."""
    before = {name: os.environ.get(name) for name in (*changes, *_AUTH_VARIABLES)}
    os.environ.update({k: v for k, v in changes.items() if k not in os.environ})
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _short_path(folder: pathlib.Path) -> Iterator[str]:
    """``folder``, or a short link to it in the system temp folder when Ray's socket paths would be too long."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(str(folder)) + _SOCKET_SUFFIX <= _SOCKET_PATH_MAX:
        yield str(folder)
        return
    holder = tempfile.mkdtemp(prefix="cas-ray-")
    link = os.path.join(holder, "r")
    os.symlink(folder, link)
    try:
        yield link
    finally:
        shutil.rmtree(holder, ignore_errors=True)


@contextlib.contextmanager
def _ray_session(
    ray: Any, out: pathlib.Path, workers: int, address: Optional[str], init: Dict[str, Any]
) -> Iterator[bool]:
    """Connects to ``address``, reuses the connection already made in this process, or starts a local
    instance for the job (yields whether it is local; stops only what it started)."""
    if ray.is_initialized():
        yield False
        return
    address = address or os.environ.get("RAY_ADDRESS") or None  # as ray.init itself would
    if address is not None:
        ray.init(address=address, **init)
        try:
            yield False
        finally:
            ray.shutdown()
        return
    env = {"RAY_worker_niceness": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    if not any(name in os.environ for name in _AUTH_VARIABLES):
        env["RAY_AUTH_TOKEN"] = _TOKEN
    folder = out / RAY_DIR
    options = dict(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="warning")
    options.update(init)
    with _environment(env), _short_path(folder) as temp:
        ray.init(_temp_dir=temp, object_spilling_directory=str(folder / "spill"), **options)
        try:
            yield True
        finally:
            ray.shutdown()


def _check_options(workers: Any, max_retries: Any, address: Any) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}.")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(
            f"max_retries must be an integer, 0 or more (retries of a shard whose worker died), got "
            f"{max_retries!r}."
        )
    if address is not None and (not isinstance(address, str) or not address):
        raise ValueError(
            f"address must be a Ray cluster's address such as 'auto' or 'ray://head:10001', or None for a "
            f"local instance, got {address!r}."
        )


def run(
    spec: JobSpec,
    out_dir: Union[str, pathlib.Path],
    workers: int = 1,
    address: Optional[str] = None,
    max_retries: int = 3,
    progress: bool = True,
    keep_ray_dir: bool = False,
    ray_init: Optional[Dict[str, Any]] = None,
) -> List[int]:
    r"""
    Computes the job's pending shards as Ray tasks and writes ``_SUCCESS`` when all are done.

    Each shard is one task (``num_cpus=1``); at most ``workers`` run at a time, handed out as workers free
    up. A task whose worker dies (killed, out of memory, a crashed node) is retried up to ``max_retries``
    times; an exception raised by the computation itself is not retried and ends the job with an error
    (finished shards stay, and a rerun resumes). The manifest must have been checked and written
    (:func:`~captum_attn_shapley.jobs.explain_dataset` does).

    With ``address=None`` and no Ray connection in this process, a local Ray instance with ``workers``
    CPUs is started for the job and stopped afterwards; its folders are under ``OUT_DIR/.ray`` (deleted
    after a successful job unless ``keep_ray_dir``; its logs are in ``.ray/session_*/logs``). With an
    ``address`` (``"auto"`` for the cluster of ``ray start`` on this machine, or ``"ray://HOST:10001"``),
    the tasks run on that cluster: every node must have this package and the model, and see the input
    file and ``out_dir`` at the same paths (a shared file system). ``RAY_ADDRESS`` in the environment
    stands for ``address`` (as for ``ray.init``; the command line's way to a cluster). An existing
    connection (``ray.init`` called before) is used as it is.

    Args:
        spec (JobSpec): The job.
        out_dir (str or Path): The job's folder.
        workers (int): Shards computed at the same time (the local instance's CPUs). Default: 1
        address (str, optional): A Ray cluster to run on. Default: None (a local instance)
        max_retries (int): Retries of a shard whose worker died. Default: 3
        progress (bool): Show a progress bar (examples/s, shards done). Default: True
        keep_ray_dir (bool): Keep ``OUT_DIR/.ray`` after a successful job. Default: False
        ray_init (dict, optional): Further keyword arguments of ``ray.init`` (e.g. ``runtime_env``).

    Returns:
        list[int]: The shards computed by this call.

    Raises:
        ImportError: Without Ray.
        RuntimeError: If a shard failed (after its retries).

    Examples::

        >>> from captum_attn_shapley.jobs import ray_engine
        >>> ray_engine.run(spec, "out", workers=2)
        [0, 1, 2]
        >>> # on a cluster started with `ray start --head` (and `ray start --address HEAD:6379` on the others)
        >>> ray_engine.run(spec, "/shared/out", workers=64, address="auto")
    """
    _check_options(workers, max_retries, address)
    ray = require_ray()
    out = pathlib.Path(out_dir).resolve()
    todo = pending_shards(spec, out)
    if todo:
        shards = plan_shards(spec)
        with _ray_session(ray, out, workers, address, dict(ray_init or {})) as local:
            _run_tasks(ray, spec, out, todo, shards, workers, max_retries, progress)
        remove_partial_files(out)
        if local and not keep_ray_dir:
            shutil.rmtree(out / RAY_DIR, ignore_errors=True)
    mark_success(spec, out)
    return todo


def _run_tasks(
    ray: Any,
    spec: JobSpec,
    out: pathlib.Path,
    todo: List[int],
    shards: List[Any],
    workers: int,
    max_retries: int,
    progress: bool,
) -> None:
    """Submits the shards, at most ``workers`` in flight, and follows them with the progress bar."""
    task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_compute)
    spec_json = spec.to_json()
    total = sum(s.stop - s.start for s in shards)
    done = len(shards) - len(todo)
    initial = total - sum(shards[i].stop - shards[i].start for i in todo)
    bar = tqdm(total=total, initial=initial, unit="ex", desc="explain-dataset (ray)", disable=not progress)
    bar.set_postfix_str(f"shards {done}/{len(shards)}")
    queue = list(todo)
    running: Dict[Any, int] = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                index = queue.pop(0)
                running[task.remote(spec_json, index, str(out))] = index
            finished, _ = ray.wait(list(running), num_returns=1)
            for ref in finished:
                index = running.pop(ref)
                try:
                    ray.get(ref)
                except Exception as err:
                    raise RuntimeError(
                        f"Shard {index} failed on Ray ({type(err).__name__}); finished shards are kept and a "
                        f"rerun computes the rest. The cause:\n{err}"
                    ) from err
                done += 1
                bar.update(shards[index].stop - shards[index].start)
                bar.set_postfix_str(f"shards {done}/{len(shards)}")
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        bar.close()
