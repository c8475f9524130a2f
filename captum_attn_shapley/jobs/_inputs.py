"""Reading a dataset job's input file (Parquet, CSV or JSON lines): its text column and optional labels,
checked before any work, and kept once per process (image columns and folders: ``_images``)."""

import csv
import functools
import hashlib
import json
import pathlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

#: Input formats by file suffix.
FORMATS: Dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
#: The install command of the optional dependency.
PYARROW_FIX = 'pip install "captum-attn-shapley[jobs]"'


def require_pyarrow() -> Any:
    r"""
    Imports ``pyarrow.parquet`` (the optional extra ``[jobs]``).

    Returns:
        module: ``pyarrow.parquet``.

    Raises:
        ImportError: If pyarrow is not installed (the message names the install command).
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError(f"Dataset jobs write Parquet files and need pyarrow: {PYARROW_FIX}") from err
    return pq


def infer_format(path: str, given: Optional[str]) -> str:
    r"""
    The input format: ``given`` if set, else from the file's suffix.

    Args:
        path (str): The input file.
        given (str, optional): ``"parquet"``, ``"csv"`` or ``"jsonl"``.

    Returns:
        str: The format.

    Raises:
        ValueError: For an unknown format or suffix.
    """
    known = sorted(set(FORMATS.values()))
    if given is not None:
        if given not in known:
            raise ValueError(f"input_format {given!r} is not supported: use one of {known}.")
        return given
    suffix = pathlib.Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"input {path!r}: cannot tell its format from the suffix {suffix!r}; name the file "
            f"{' / '.join(sorted(FORMATS))} or give input_format (one of {known})."
        )
    return FORMATS[suffix]


def file_digest(path: str) -> str:
    r"""
    SHA-256 of a file's bytes.

    Args:
        path (str): The file.

    Returns:
        str: 64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_columns(path: str, fmt: str) -> Tuple[List[str], List[Dict[str, Any]]]:
    r"""
    The column names and the rows of a Parquet, CSV or JSON-lines file.

    Args:
        path (str): The file.
        fmt (str): Its format (:func:`infer_format`).

    Returns:
        tuple: ``(column names, rows as dicts)``.

    Raises:
        ValueError: For a JSON-lines line that is not JSON.
    """
    if fmt == "parquet":
        table = require_pyarrow().read_table(path)
        return list(table.column_names), table.to_pylist()
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"input {path!r} line {number} is not JSON: {err}.") from None
    names: List[str] = []
    for row in rows:
        names += [k for k in (row if isinstance(row, dict) else {}) if k not in names]
    return names, rows


@functools.lru_cache(maxsize=4)
def _load(path: str, fmt: str, text_column: str, label_column: Optional[str], stamp: Tuple[int, int]) -> Any:
    columns, rows = read_columns(path, fmt)
    if not rows:
        raise ValueError(f"input {path!r} has no rows: give a file with at least one example.")
    check_columns(
        path,
        columns,
        [(text_column, "text_column", "--text-column"), (label_column, "label_column", "--label-column")],
    )
    texts: List[str] = []
    labels: Optional[List[int]] = [] if label_column is not None else None
    for number, row in enumerate(rows):
        text = row.get(text_column) if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                f"input {path!r} row {number}: the {text_column!r} value {text!r} is not a non-empty text; "
                "remove or fill the row."
            )
        texts.append(text)
        if labels is not None and label_column is not None:
            labels.append(row_label(row, label_column, path, number))
    return tuple(texts), None if labels is None else tuple(labels)


def check_columns(path: str, columns: Sequence[str], wanted: Sequence[Tuple[Optional[str], str, str]]) -> None:
    r"""
    Refuses a column the file does not have.

    Args:
        path (str): The file.
        columns (sequence of str): Its columns.
        wanted (sequence of tuple): ``(column or None, argument, command-line option)`` for each column needed.

    Raises:
        ValueError: Naming the argument, the missing column and the file's columns.
    """
    for column, what, option in wanted:
        if column is not None and column not in columns:
            raise ValueError(
                f"{what} {column!r} is not a column of {path!r} (its columns: {list(columns)}); "
                f"give {what}= one of them ({option} on the command line)."
            )


def row_label(row: Any, label_column: str, path: str, number: int) -> int:
    r"""
    The integer gold label of a row.

    Args:
        row (dict): The row.
        label_column (str): The column of labels.
        path (str): The file (for the message).
        number (int): The row's number (for the message).

    Returns:
        int: The label.

    Raises:
        ValueError: If the value is not an integer class index.
    """
    value: Any = row.get(label_column) if isinstance(row, dict) else None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"input {path!r} row {number}: the label {value!r} of {label_column!r} is not an integer "
            "class index; give integer labels or leave label_column out."
        ) from None


def read_examples(
    path: str, fmt: str, text_column: str, label_column: Optional[str]
) -> Tuple[Sequence[str], Optional[Sequence[int]]]:
    r"""
    The texts (and labels) of an input file, read once per process (until the file changes).

    Args:
        path (str): The file.
        fmt (str): Its format (:func:`infer_format`).
        text_column (str): The column of texts.
        label_column (str, optional): The column of integer labels.

    Returns:
        tuple: ``(texts, labels or None)``, in file order.

    Raises:
        ValueError: For an empty file, a missing column, an empty or non-text text, a non-integer label.
        OSError: If the file cannot be read.
    """
    info = pathlib.Path(path).stat()
    result: Tuple[Sequence[str], Optional[Sequence[int]]] = _load(
        path, fmt, text_column, label_column, (info.st_size, info.st_mtime_ns)
    )
    return result


def read_job_examples(spec: Any) -> Tuple[Sequence[str], Optional[Sequence[int]]]:
    r"""
    The examples of a job (a :class:`~captum_attn_shapley.jobs.JobSpec`): its texts, or the absolute
    paths of its images (:func:`~captum_attn_shapley.jobs._images.read_images`), and its labels.

    Args:
        spec (JobSpec): The job.

    Returns:
        tuple: ``(texts or image paths, labels or None)``, in input order.
    """
    if spec.images:
        from captum_attn_shapley.jobs._images import read_images

        return read_images(spec.input, str(spec.input_format), spec.image_column, spec.label_column)
    return read_examples(spec.input, str(spec.input_format), spec.text_column, spec.label_column)
