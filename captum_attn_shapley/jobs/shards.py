"""The shards of a dataset job and its output folder: the plan (fixed by the spec alone), computing one
shard in any process (:func:`run_shard`), what is left to do, the manifest that keeps a rerun from
mixing results of other data, model or settings, the success marker and the job's status.

Output folder::

    manifest.json              the spec, its fingerprint (by part), the number of examples and shards
    shard-00000.parquet        per-token rows of shard 0 (written last: its presence means the shard is done);
                               image jobs: per-patch rows;
                               TokenTCAV jobs: per example, target and layer, the scores of every CAV
    examples-00000.parquet     per-example rows of shard 0
    ...
    _SUCCESS                   written once every shard is done
    tcav.json, tcav.md         TokenTCAV jobs: the T-TCAV scores and tests over all shards
"""

import dataclasses
import json
import os
import pathlib
import time
import uuid
from typing import Any, Dict, List, Optional, Union

import torch

from captum_attn_shapley._utils.fingerprint import settings_digest
from captum_attn_shapley._utils.io import atomic_write_text
from captum_attn_shapley.jobs._inputs import read_job_examples, require_pyarrow
from captum_attn_shapley.jobs._model import load_model
from captum_attn_shapley.jobs.spec import JobSpec

PathLike = Union[str, pathlib.Path]
#: The manifest's file name.
MANIFEST = "manifest.json"
#: The success marker's file name.
SUCCESS = "_SUCCESS"
#: Bump when the output files change.
OUTPUT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Shard:
    r"""
    One shard: the examples ``[start, stop)`` of the input, in input order.

    Attributes:
        index (int): The shard's number (its files are ``shard-{index:05d}.parquet``).
        start (int): Its first example.
        stop (int): One past its last example.
    """

    index: int
    start: int
    stop: int


def shard_path(out_dir: PathLike, index: int, kind: str = "shard") -> pathlib.Path:
    r"""
    A shard's output file: ``shard-00012.parquet`` (tokens) or ``examples-00012.parquet``.

    Args:
        out_dir (str or Path): The job's folder.
        index (int): The shard.
        kind (str): ``"shard"`` or ``"examples"``. Default: ``"shard"``

    Returns:
        Path: The file.
    """
    return pathlib.Path(out_dir) / f"{kind}-{index:05d}.parquet"


def num_examples(spec: JobSpec) -> int:
    r"""
    The number of examples of a job's input (read once per process).

    Args:
        spec (JobSpec): The job.

    Returns:
        int: The number of rows.
    """
    examples, _ = read_job_examples(spec)
    return len(examples)


def plan_shards(spec: JobSpec) -> List[Shard]:
    r"""
    The job's shards: ``spec.shard_size`` examples each (the last may be shorter), in input order.
    They depend on the spec and the input alone, never on the number of workers.

    Args:
        spec (JobSpec): The job.

    Returns:
        list[Shard]: The shards, by index.

    Examples::

        >>> [(s.start, s.stop) for s in plan_shards(spec)]  # 600 examples, shard_size 256
        [(0, 256), (256, 512), (512, 600)]
    """
    n, size = num_examples(spec), int(spec.shard_size or 1)
    return [Shard(i, start, min(n, start + size)) for i, start in enumerate(range(0, n, size))]


def _write_parquet(columns: Dict[str, List[Any]], path: pathlib.Path, float_columns: List[str]) -> None:
    """Writes a table to a temporary name in the same folder, then renames it."""
    pq = require_pyarrow()
    import pyarrow as pa

    def kind(name: str, values: List[Any]) -> Any:
        if name not in float_columns:
            return None
        return pa.list_(pa.float32()) if values and isinstance(values[0], list) else pa.float32()

    arrays = {k: pa.array(v, type=kind(k, v)) for k, v in columns.items()}
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(pa.table(arrays), str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def run_shard(spec: JobSpec, index: int, out_dir: PathLike) -> pathlib.Path:
    r"""
    Computes one shard and writes its files: a pure function of the spec and the index, usable in any
    process (the model is loaded once per process).

    Sets ``torch.set_num_threads(spec.threads_per_worker)`` for the computation (and restores the
    previous count), sorts the shard's examples by length (within the shard only), runs every method
    on each batch for the predicted class, and writes ``examples-XXXXX.parquet`` then
    ``shard-XXXXX.parquet``, each to a temporary name renamed into place.

    Args:
        spec (JobSpec): The job.
        index (int): The shard.
        out_dir (str or Path): The job's folder (created if missing).

    Returns:
        Path: The shard's token file.

    Examples::

        >>> run_shard(spec, 0, "out")
        PosixPath('out/shard-00000.parquet')
    """
    from captum_attn_shapley.jobs._compute import compute_shard
    from captum_attn_shapley.jobs._image_compute import compute_image_shard
    from captum_attn_shapley.jobs.tcav import compute_tcav_shard

    shards = plan_shards(spec)
    if not 0 <= index < len(shards):
        raise ValueError(f"index {index} is not a shard of this job: it has shards 0 to {len(shards) - 1}.")
    shard = shards[index]
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts, labels = read_job_examples(spec)  # image jobs: the images' paths
    previous = torch.get_num_threads()
    torch.set_num_threads(spec.threads_per_worker)
    try:
        model, tokenizer = load_model(spec.model, spec.images)  # image jobs: the image processor
        compute: Any = compute_tcav_shard if spec.kind == "tcav" else compute_shard
        compute = compute_image_shard if spec.images else compute
        tables = compute(
            spec,
            model,
            tokenizer,
            texts[shard.start : shard.stop],
            None if labels is None else labels[shard.start : shard.stop],
            shard.start,
        )
    finally:
        torch.set_num_threads(previous)
    methods = list(spec.methods) + ["scores"]
    metrics = [k for k in tables["examples"] if ":" in k] + ["probability"]
    _write_parquet(tables["examples"], shard_path(out, index, "examples"), metrics)
    path = shard_path(out, index)
    _write_parquet(tables["tokens"], path, methods)
    return path


def pending_shards(spec: JobSpec, out_dir: PathLike) -> List[int]:
    r"""
    The shards still to compute: those without their final token file (missing, or only a partial
    temporary file).

    Args:
        spec (JobSpec): The job.
        out_dir (str or Path): The job's folder.

    Returns:
        list[int]: Shard indices, in order.
    """
    return [s.index for s in plan_shards(spec) if not shard_path(out_dir, s.index).is_file()]


def remove_partial_files(out_dir: PathLike) -> int:
    r"""
    Deletes temporary files left by interrupted shards (call it only when no worker is writing).

    Args:
        out_dir (str or Path): The job's folder.

    Returns:
        int: The number of files removed.
    """
    removed = 0
    for path in pathlib.Path(out_dir).glob(".*.parquet.*.tmp"):
        path.unlink()
        removed += 1
    return removed


def _read_manifest(out_dir: PathLike) -> Optional[Dict[str, Any]]:
    path = pathlib.Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    manifest: Dict[str, Any] = json.loads(path.read_text())
    return manifest


def _clear(out: pathlib.Path) -> None:
    for pattern in ("shard-*.parquet", "examples-*.parquet", ".*.parquet.*.tmp", "tcav.*", SUCCESS, MANIFEST):
        for path in out.glob(pattern):
            path.unlink()


def check_manifest(spec: JobSpec, out_dir: PathLike, overwrite: bool = False) -> None:
    r"""
    Refuses to mix results: if ``out_dir`` holds a job of other data, model, settings or versions (by
    its manifest), raises an error naming what differs, unless ``overwrite`` (the old job's files are
    then deleted). Shard files without a manifest are refused the same way.

    Args:
        spec (JobSpec): The job.
        out_dir (str or Path): The job's folder.
        overwrite (bool): Delete another job's results instead of refusing. Default: False

    Raises:
        ValueError: If the folder holds another job's results and ``overwrite`` is False.
    """
    out = pathlib.Path(out_dir)
    if not out.is_dir():
        return
    manifest = _read_manifest(out)
    if manifest is None:
        if not any(out.glob("shard-*.parquet")) and not any(out.glob("examples-*.parquet")):
            return
        differs = ["no manifest.json"]
    else:
        stored = manifest.get("fingerprint_parts", {})
        parts = spec.fingerprint_parts()
        differs = [name for name, digest in parts.items() if stored.get(name) != digest]
        if not differs:
            return
    if overwrite:
        _clear(out)
        return
    raise ValueError(
        f"out_dir {str(out)!r} holds the results of another job (different: {', '.join(differs)}); "
        "mixing them would give wrong results. Choose another out_dir, or pass overwrite=True "
        "(--overwrite) to delete them."
    )


def write_manifest(spec: JobSpec, out_dir: PathLike) -> pathlib.Path:
    r"""
    Writes ``manifest.json`` (the spec, its fingerprint by part, the plan and the start time), keeping
    the first start time of a resumed job.

    Args:
        spec (JobSpec): The job.
        out_dir (str or Path): The job's folder (created if missing).

    Returns:
        Path: The manifest.
    """
    out = pathlib.Path(out_dir)
    old = _read_manifest(out) or {}
    parts = spec.fingerprint_parts()
    manifest = {
        "output_version": OUTPUT_VERSION,
        "fingerprint": settings_digest(parts),
        "fingerprint_parts": parts,
        "spec": json.loads(spec.to_json()),
        "n_examples": num_examples(spec),
        "n_shards": len(plan_shards(spec)),
        "shard_size": spec.shard_size,
        "started": old.get("started", time.time()),
    }
    path = out / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=2))
    return path


def mark_success(spec: JobSpec, out_dir: PathLike) -> bool:
    r"""
    Writes the ``_SUCCESS`` marker if every shard is done.

    Args:
        spec (JobSpec): The job.
        out_dir (str or Path): The job's folder.

    Returns:
        bool: Whether the job is complete.
    """
    if pending_shards(spec, out_dir):
        return False
    status = dataclasses.replace(job_status(out_dir), complete=True)
    atomic_write_text(pathlib.Path(out_dir) / SUCCESS, json.dumps(dataclasses.asdict(status)))
    return True


@dataclasses.dataclass(frozen=True)
class JobStatus:
    r"""
    Where a job stands.

    Attributes:
        shards_done (int): Shards with their final files.
        shards_total (int): Shards of the job.
        examples_done (int): Examples in finished shards.
        examples_total (int): Examples of the job.
        elapsed_s (float): Seconds from the manifest's start time to the newest shard file (0 if none).
        complete (bool): ``_SUCCESS`` is present.
    """

    shards_done: int
    shards_total: int
    examples_done: int
    examples_total: int
    elapsed_s: float
    complete: bool

    def describe(self) -> str:
        r"""
        One line for people.

        Returns:
            str: E.g. ``"3/4 shards, 600/700 examples, 12.5 s"``.
        """
        state = "complete" if self.complete else "incomplete"
        return (
            f"{self.shards_done}/{self.shards_total} shards, {self.examples_done}/{self.examples_total} examples, "
            f"{self.elapsed_s:.1f} s, {state}"
        )


def job_status(out_dir: PathLike) -> JobStatus:
    r"""
    The status of the job in ``out_dir`` (from its manifest and files alone; the input is not read).

    Args:
        out_dir (str or Path): The job's folder.

    Returns:
        JobStatus: Shards and examples done, elapsed time, completeness.

    Raises:
        ValueError: If the folder holds no ``manifest.json``.
    """
    out = pathlib.Path(out_dir)
    manifest = _read_manifest(out)
    if manifest is None:
        raise ValueError(f"{str(out)!r} holds no manifest.json: it is not a dataset job's folder.")
    total, size, n = int(manifest["n_shards"]), int(manifest["shard_size"]), int(manifest["n_examples"])
    done = [i for i in range(total) if shard_path(out, i).is_file()]
    examples = sum(min(n, (i + 1) * size) - i * size for i in done)
    times = [shard_path(out, i).stat().st_mtime for i in done]
    elapsed = max(0.0, max(times) - float(manifest["started"])) if times else 0.0
    return JobStatus(len(done), total, examples, n, round(elapsed, 3), (out / SUCCESS).is_file())
