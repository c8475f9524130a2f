"""``explain_dataset``: a dataset job from Python, on the local engine, Ray or torchrun."""

import dataclasses
import importlib
import pathlib
from typing import Any, List, Optional, Sequence, Union

from captum_attn_shapley._utils.checks import check_choice
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.model_checks import max_text_length
from captum_attn_shapley.jobs._images import check_image_inputs
from captum_attn_shapley.jobs._inputs import read_examples, require_pyarrow
from captum_attn_shapley.jobs._model import load_model
from captum_attn_shapley.jobs.shards import (
    JobStatus,
    check_manifest,
    job_status,
    remove_partial_files,
    write_manifest,
)
from captum_attn_shapley.jobs.spec import JobSpec, make_spec

#: The truncation length when none is given (capped at the model's limit).
DEFAULT_MAX_LENGTH = 128

#: The engines, by name: the module whose ``run(spec, out_dir, workers, **engine_options)`` runs a job.
ENGINES = {
    "local": "captum_attn_shapley.jobs.local",
    "ray": "captum_attn_shapley.jobs.ray_engine",
    "torchrun": "captum_attn_shapley.jobs.torchrun_engine",
}


@dataclasses.dataclass(frozen=True)
class JobResult:
    r"""
    What a dataset job did.

    Attributes:
        spec (JobSpec): The job.
        out_dir (pathlib.Path): Its folder.
        computed (list[int]): Shards computed by this call (the others were already done).
        status (JobStatus): The folder's status after the call.
    """

    spec: JobSpec
    out_dir: pathlib.Path
    computed: List[int]
    status: JobStatus

    def read_tokens(self) -> Any:
        r"""
        The per-token rows of every shard, as one ``pyarrow.Table`` in example order.

        Returns:
            pyarrow.Table: Columns ``example``, ``token_index``, ``token``, ``is_player``, ``start``,
            ``end`` (fast tokenizers) and one per method; image jobs: one row per patch, columns
            ``example``, ``patch_index``, ``row``, ``col`` and one per method.
        """
        return _concat(self.out_dir, "shard")

    def read_examples(self) -> Any:
        r"""
        The per-example rows of every shard, as one ``pyarrow.Table`` in example order.

        Returns:
            pyarrow.Table: Columns ``example``, ``n_tokens``, ``n_players`` and, as asked, ``label``,
            ``predicted``, ``probability``, ``comprehensiveness:<method>``, ``sufficiency:<method>``.
        """
        return _concat(self.out_dir, "examples")


def _concat(out_dir: pathlib.Path, kind: str) -> Any:
    pq = require_pyarrow()
    import pyarrow as pa

    return pa.concat_tables([pq.read_table(str(p)) for p in sorted(out_dir.glob(f"{kind}-*.parquet"))])


def check_job_inputs(spec: JobSpec) -> None:
    r"""
    Checks what a job needs before any work: pyarrow, the input's columns and values, the model (loaded
    once per process) and ``max_length`` against its positions; for an image job, that every image
    opens and that the model is an image classifier with an image processor.

    Args:
        spec (JobSpec): The job.

    Raises:
        ImportError: Without pyarrow.
        ValueError: For an empty input, a missing column, a bad value, a ``max_length`` the model cannot take.
    """
    require_pyarrow()
    if spec.images:
        check_image_inputs(spec)
        return
    read_examples(spec.input, str(spec.input_format), spec.text_column, spec.label_column)
    model, _ = load_model(spec.model)
    limit, why = max_text_length(model)
    if limit is not None and spec.max_length > limit:
        raise ValueError(
            f"max_length {spec.max_length} is more than the {limit} positions {type(model).__name__} accepts"
            f"{why}; give max_length={limit} or less."
        )


@log_usage()
def explain_dataset(
    input: Union[str, pathlib.Path],
    out_dir: Union[str, pathlib.Path],
    model: str,
    methods: Optional[Sequence[str]] = None,
    engine: str = "local",
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    engine_options: Optional[dict] = None,  # type: ignore[type-arg]
    **options: Any,
) -> JobResult:
    r"""
    Explains every example of a dataset file with the package's methods, in shards that any engine
    computes bit-identically and that a rerun resumes.

    Checks everything first (input file and columns, methods, options, pyarrow, the output folder's
    manifest), writes ``manifest.json``, computes the pending shards with the engine and writes
    ``_SUCCESS`` once all are done. With ``concepts=`` (a TokenTCAV job), the CAVs are trained first,
    once, and ``tcav.json`` / ``tcav.md`` summarise all shards at the end. See
    :doc:`the dataset jobs guide </jobs>` for the output schema.

    Args:
        input (str or Path): A Parquet, CSV or JSON-lines file with a text column (or, with
                    ``image_column=``, a column of image paths), or a folder of images.
        out_dir (str or Path): The job's folder (created if missing).
        model (str): A model directory saved with ``save_pretrained`` (with its tokenizer) or a hub id.
        methods (sequence of str, optional): Method names (see :class:`JobSpec`).
        engine (str): ``"local"``, ``"ray"`` or ``"torchrun"``. Default: ``"local"``
        workers (int): Worker processes. Default: 1
        overwrite (bool): Delete the results of another job in ``out_dir`` instead of refusing. Default: False
        progress (bool): Show a progress bar (every engine). Default: True
        engine_options (dict, optional): Further keyword arguments of the engine's ``run``.
        **options: Fields of :class:`JobSpec` (``batch_size``, ``shard_size``, ``metrics``, ...);
                    ``max_length`` defaults to 128, or the model's limit if it takes fewer tokens.

    Returns:
        JobResult: The spec, the folder, the shards computed and the status.

    Examples::

        >>> result = explain_dataset("tweets.parquet", "out", "my-model-dir", ["grad-att-max-mutual", "att"])
        >>> result.read_tokens().to_pandas().head()
    """
    check_choice(engine, tuple(ENGINES), "engine")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}.")
    spec = make_spec(str(input), str(model), methods, **options)
    if options.get("max_length") is None and not spec.images:  # 128, or the model's limit if it takes fewer
        limit, _ = max_text_length(load_model(spec.model)[0])
        spec = dataclasses.replace(spec, max_length=min(DEFAULT_MAX_LENGTH, limit or DEFAULT_MAX_LENGTH))
    check_job_inputs(spec)
    out = pathlib.Path(out_dir).expanduser()
    check_manifest(spec, out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(spec, out)
    remove_partial_files(out)
    if spec.kind == "tcav":
        from captum_attn_shapley.jobs.tcav import prepare_tcav

        prepare_tcav(spec)  # the CAVs, trained once, before the workers load them
    module = importlib.import_module(ENGINES[engine])
    kwargs = dict(engine_options or {}, progress=progress)
    computed = module.run(spec, out, workers, **kwargs)
    status = job_status(out)
    if spec.kind == "tcav" and status.complete:
        from captum_attn_shapley.jobs.tcav import summarize_tcav

        summarize_tcav(spec, out)
    return JobResult(spec, out, list(computed or []), status)
