"""``captum-attn-shapley explain-dataset``: every example of a Parquet, CSV or JSON-lines file (texts, or
images for a Vision Transformer) explained in resumable shards (:func:`captum_attn_shapley.jobs.explain_dataset`),
and ``--status DIR``."""

import argparse
import pathlib
from typing import Any, Dict, List, Optional, Sequence

from captum_attn_shapley.cli._checks import check_max_length, check_model_source, check_output, loading
from captum_attn_shapley.cli._common import UserError, int_at_least, non_negative_int, positive_int
from captum_attn_shapley.evaluation.registry import resolve_standard_methods

#: The default methods of the command.
DEFAULT_METHODS = ["Shapley-Grad-Att-Max-Mutual"]


def _methods(names: Sequence[str]) -> List[str]:
    try:
        return list(resolve_standard_methods(names) or [])
    except ValueError as err:
        raise UserError(
            f"--methods: {err}", "Run 'captum-attn-shapley compare --list-methods' for the names."
        ) from None


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    r"""
    Adds the ``explain-dataset`` command and its options.

    Args:
        sub: The program's sub-command parsers.
    """
    job = sub.add_parser(
        "explain-dataset", help="explain every text (or image) of a Parquet/CSV/JSONL file in resumable shards"
    )
    job.add_argument(
        "input",
        nargs="?",
        default=None,
        help="the examples: a .parquet, .csv or .jsonl file, or a folder of images (ViT models)",
    )
    job.add_argument(
        "--out", type=pathlib.Path, default=None, metavar="DIR", help="the job's folder (created; resumable)"
    )
    job.add_argument(
        "--status",
        type=pathlib.Path,
        default=None,
        metavar="DIR",
        help="print the status of the job in DIR and exit",
    )
    job.add_argument("--engine", choices=["local", "ray", "torchrun"], default="local", help="default: local")
    job.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    job.add_argument(
        "--address",
        default=None,
        help="with --engine ray: a running Ray cluster ('auto', HEAD:6379 or ray://HEAD:10001; default: "
        "RAY_ADDRESS, else a local Ray instance for the job)",
    )
    job.add_argument(
        "--model",
        default=None,
        help="Hugging Face model id or local directory (default: the embedded classifier, trained on first use)",
    )
    job.add_argument(
        "--methods",
        nargs="+",
        default=DEFAULT_METHODS,
        help="method names as for compare (default: Shapley-Grad-Att-CLS; several at once)",
    )
    job.add_argument("--text-column", default=None, help="the column of texts (default: text)")
    job.add_argument(
        "--image-column",
        default=None,
        help="the column of image paths (absolute or relative to INPUT's folder) instead of texts; "
        "--model: an image classifier saved with its image processor",
    )
    job.add_argument("--label-column", default=None, help="a column of integer labels, copied to the output")
    job.add_argument(
        "--format", dest="input_format", choices=["parquet", "csv", "jsonl"], default=None, help="default: suffix"
    )
    job.add_argument("--metrics", action="store_true", help="comprehensiveness and sufficiency of every method")
    job.add_argument("--no-predictions", action="store_true", help="leave out the predicted class and probability")
    job.add_argument("--batch-size", type=positive_int, default=16, help="examples per batch (default 16)")
    job.add_argument(
        "--shard-size",
        type=positive_int,
        default=None,
        help="examples per shard (whole batches; default 16 batches)",
    )
    job.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="truncation length (default 128, or the model's limit)",
    )
    job.add_argument(
        "--threads-per-worker", type=positive_int, default=1, help="torch threads per worker (default 1)"
    )
    job.add_argument("--seed", type=non_negative_int, default=0, help="torch seed before every attribute call")
    tcav = job.add_argument_group("TokenTCAV at scale (instead of --methods)")
    tcav.add_argument(
        "--concepts", default=None, help='JSON file: {"concepts": {name: [texts]}, "sets": [[names]]}'
    )
    tcav.add_argument(
        "--layers", type=int, nargs="+", default=None, help="blocks probed (indices; needs --concepts)"
    )
    tcav.add_argument(
        "--targets",
        type=non_negative_int,
        nargs="+",
        default=[],
        help="classes scored (default: the predicted one)",
    )
    tcav.add_argument("--repeats", type=int_at_least(2), default=50, help="CAVs per concept (default 50)")
    tcav.add_argument("--cav-dir", default=None, help="CAV cache shared by the workers (default: the user cache)")
    job.add_argument("--overwrite", action="store_true", help="delete another job's results in --out")
    job.add_argument("--no-progress", action="store_true", help="no progress bar")


def _status(folder: pathlib.Path) -> int:
    from captum_attn_shapley.jobs import job_status

    if not folder.is_dir():
        raise UserError(f"--status {str(folder)!r} is not a folder.", "Give the --out folder of a dataset job.")
    try:
        status = job_status(folder)
    except ValueError as err:
        raise UserError(f"--status: {err}", "Give the --out folder of a dataset job.") from None
    print(status.describe())
    return 0


def _model_source(model: Optional[str]) -> str:
    """The model's directory or id; the embedded classifier is resolved into its cached directory."""
    if model is not None:
        return model
    from captum_attn_shapley.demos.default_model import load_default_classifier

    _, _, info = load_default_classifier()
    return str(info["name_or_path"])


def run(args: argparse.Namespace) -> int:
    r"""
    Runs the ``explain-dataset`` command.

    Args:
        args (argparse.Namespace): The parsed options.

    Returns:
        int: The exit status.
    """
    from transformers.utils import logging as hf_logging

    from captum_attn_shapley.jobs import explain_dataset
    from captum_attn_shapley.jobs._model import load_model

    if args.status is not None:
        return _status(args.status)
    if args.input is None:
        raise UserError("INPUT is missing.", "Give the examples file (.parquet, .csv or .jsonl), or --status DIR.")
    folder = pathlib.Path(args.input).is_dir()
    if not folder and not pathlib.Path(args.input).is_file():
        raise UserError(
            f"INPUT {args.input!r} is not a file.",
            "Give the path of a .parquet, .csv or .jsonl file (or a folder of images).",
        )
    images = folder or args.image_column is not None
    if args.image_column is not None and args.text_column is not None:
        raise UserError(
            "--text-column and --image-column were both given.", "A job reads texts or images: give one of them."
        )
    if images and args.model is None:
        raise UserError(
            "Images need an image classifier: the embedded model reads texts.",
            "Give --model, a ViT/DeiT directory (saved with its image processor) or hub id.",
        )
    if args.address is not None and args.engine != "ray":
        raise UserError(
            f"--address {args.address!r} is for --engine ray, not --engine {args.engine}.",
            "Add --engine ray, or leave --address out.",
        )
    if args.out is None:
        raise UserError(
            "--out DIR is required (the job's folder).", "Add --out results (new, or a job to resume)."
        )
    check_output(args.out, "--out", directory=True)
    methods = _methods(args.methods)
    if args.concepts is not None and not args.layers:
        raise UserError(
            "--concepts needs --layers.", "Give the blocks to probe, e.g. --layers 3 5 (negative: from the end)."
        )
    check_model_source(args.model)
    hf_logging.disable_progress_bar()
    source = _model_source(args.model)
    with loading(args.model):
        model, _ = load_model(source, images)
    max_length = (args.max_length or 128) if images else check_max_length(args.max_length, model, default=128)
    options: Dict[str, Any] = {
        "input_format": args.input_format,
        "text_column": args.text_column or "text",
        "image_column": args.image_column,
        "label_column": args.label_column,
        "metrics": args.metrics,
        "predictions": not args.no_predictions,
        "batch_size": args.batch_size,
        "shard_size": args.shard_size,
        "max_length": max_length,
        "threads_per_worker": args.threads_per_worker,
        "seed": args.seed,
    }
    if args.concepts is not None:
        options.update(concepts=args.concepts, layers=args.layers, targets=args.targets, repeats=args.repeats)
        options["cav_dir"] = args.cav_dir
    result = explain_dataset(
        args.input,
        args.out,
        source,
        methods,
        engine=args.engine,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        engine_options={"address": args.address} if args.address is not None else None,
        **options,
    )
    print(f"{result.out_dir}: {result.status.describe()} ({len(result.computed)} shards computed now)")
    if result.spec.kind == "tcav" and result.status.complete:
        print((result.out_dir / "tcav.md").read_text())
    return 0
