"""Image inputs of dataset jobs (Vision Transformer classifiers): the images named in a column of a
Parquet, CSV or JSON-lines file, or the image files of a folder; the checks of an image job; the digest
of the images' contents; and the pixels of a batch through the model's image processor."""

import functools
import pathlib
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_attn_shapley._utils.fingerprint import settings_digest
from captum_attn_shapley.evaluation.registry import ATTENTION_METHODS, SAMPLING_ESTIMATORS, standard_method_names
from captum_attn_shapley.jobs._inputs import check_columns, file_digest, read_columns, row_label

#: The ``input_format`` of a folder of image files.
FOLDER = "folder"
#: The file suffixes read from a folder of images (case ignored).
IMAGE_SUFFIXES: Tuple[str, ...] = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
#: The methods an image job runs: the attention methods and the sampling estimators of their game,
#: which return one score per patch ``(batch, rows, cols)``.
IMAGE_METHODS: Tuple[str, ...] = tuple(ATTENTION_METHODS) + tuple(
    name
    for name in standard_method_names()
    if name.endswith(tuple(f"({estimator}, {n})" for estimator, n in SAMPLING_ESTIMATORS))
)


def check_image_spec(spec: Any) -> None:
    r"""
    Refuses what an image job cannot do, before any work: a text column next to the image column,
    a TokenTCAV job, the faithfulness metrics (they replace tokens by a token id) and methods that
    do not score patches; a folder takes neither ``image_column`` nor ``label_column``.

    Args:
        spec (JobSpec): The job, its ``methods`` already resolved.

    Raises:
        ValueError: Naming the argument, what was given and the fix.
    """
    if spec.input_format == FOLDER:
        for name in ("image_column", "label_column"):
            if getattr(spec, name) is not None:
                raise ValueError(
                    f"{name}={getattr(spec, name)!r}, but input {spec.input!r} is a folder of images (no "
                    f"columns); leave {name} out, or give a Parquet/CSV/JSONL file with an image column."
                )
    if spec.text_column != "text":
        raise ValueError(
            f"text_column={spec.text_column!r} was given to an image job (image_column={spec.image_column!r}, "
            f"input {spec.input!r}): a job reads texts or images, not both; leave one out."
        )
    if spec.concepts is not None:
        raise ValueError(
            "concepts= (a TokenTCAV job) reads texts; an image job (image_column or a folder of images) "
            "cannot score concepts: leave concepts out, or give a text column."
        )
    if spec.metrics:
        raise ValueError(
            "metrics=True is not supported for images: the faithfulness metrics replace tokens by a token id "
            "and have no pixel counterpart here; leave metrics off (--metrics) for image jobs."
        )
    others = [name for name in spec.methods if name not in IMAGE_METHODS]
    if others:
        raise ValueError(
            f"methods {others} do not score image patches; an image job takes: {', '.join(IMAGE_METHODS)}."
        )


def _is_image_file(path: pathlib.Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


@functools.lru_cache(maxsize=4)
def _load(
    path: str, fmt: str, image_column: Optional[str], label_column: Optional[str], stamp: Any
) -> Tuple[Tuple[str, ...], Optional[Tuple[int, ...]]]:
    if fmt == FOLDER:
        files = sorted(str(p.resolve()) for p in pathlib.Path(path).iterdir() if _is_image_file(p))
        if not files:
            raise ValueError(
                f"input folder {path!r} holds no image files ({', '.join(IMAGE_SUFFIXES)}); "
                "give a folder of images."
            )
        return tuple(files), None
    columns, rows = read_columns(path, fmt)
    if not rows:
        raise ValueError(f"input {path!r} has no rows: give a file with at least one example.")
    check_columns(
        path,
        columns,
        [(image_column, "image_column", "--image-column"), (label_column, "label_column", "--label-column")],
    )
    base = pathlib.Path(path).parent
    images: List[str] = []
    labels: Optional[List[int]] = [] if label_column is not None else None
    for number, row in enumerate(rows):
        value = row.get(str(image_column)) if isinstance(row, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"input {path!r} row {number}: the {image_column!r} value {value!r} is not an image path; "
                "remove or fill the row."
            )
        image = (base / pathlib.Path(value).expanduser()).resolve()  # an absolute path stays as it is
        if not image.is_file():
            raise ValueError(
                f"input {path!r} row {number}: the image {value!r} ({str(image)!r}) is not a file; paths are "
                "absolute or relative to the input file's folder."
            )
        images.append(str(image))
        if labels is not None and label_column is not None:
            labels.append(row_label(row, label_column, path, number))
    return tuple(images), None if labels is None else tuple(labels)


def read_images(
    path: str, fmt: str, image_column: Optional[str], label_column: Optional[str]
) -> Tuple[Sequence[str], Optional[Sequence[int]]]:
    r"""
    The absolute paths of a job's images (and its labels), read once per process (until the input
    changes): the values of ``image_column`` (absolute, or relative to the input file's folder) in file
    order, or the image files of a folder sorted by name.

    Args:
        path (str): The input file, or a folder of images.
        fmt (str): ``"parquet"``, ``"csv"``, ``"jsonl"`` or ``"folder"``.
        image_column (str, optional): The column of image paths (files only).
        label_column (str, optional): The column of integer labels (files only).

    Returns:
        tuple: ``(image paths, labels or None)``.

    Raises:
        ValueError: For an empty input, a missing column, an empty value, a path that is not a file.
    """
    info = pathlib.Path(path).stat()
    stamp: Any = (info.st_size, info.st_mtime_ns)
    if fmt == FOLDER:  # the folder's listing, not its own time stamp, says what it holds
        stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in pathlib.Path(path).iterdir()))
    return _load(path, fmt, image_column, label_column, stamp)


def images_digest(spec: Any) -> str:
    r"""
    A digest of an image job's data: the input file's bytes (or, for a folder, the file names) and
    every image's bytes, in input order.

    Args:
        spec (JobSpec): The job.

    Returns:
        str: 16 hex digits.
    """
    images, _ = read_images(spec.input, str(spec.input_format), spec.image_column, spec.label_column)
    if spec.input_format == FOLDER:
        listing = [pathlib.Path(p).name for p in images]
    else:
        listing = [file_digest(spec.input)]
    return settings_digest([listing, [file_digest(p) for p in images]])


def load_pixels(processor: Any, paths: Sequence[str]) -> Tensor:
    r"""
    The pixel values of images: each file opened with PIL, converted to RGB, and the list passed through
    the model's image processor.

    Args:
        processor: The model's image processor (``AutoImageProcessor``).
        paths (sequence of str): The image files.

    Returns:
        Tensor: ``pixel_values`` of shape ``(len(paths), 3, height, width)``.

    Raises:
        ValueError: If a file is not an image PIL can read (the message names it).
    """
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(
                f"image {path!r} cannot be read ({err}); remove it or replace it by an image."
            ) from None
    pixels: Tensor = processor(images=images, return_tensors="pt")["pixel_values"]
    return pixels.to(torch.get_default_dtype())


def check_image_inputs(spec: Any) -> None:
    r"""
    Checks an image job before any work: the list (or folder), that every file is an image PIL can
    open, and the model: an image classifier with an image processor.

    Args:
        spec (JobSpec): The job.

    Raises:
        ValueError: For a bad input or image, or a model that is not an image classifier.
        OSError: If the model cannot be loaded.
    """
    from PIL import Image, UnidentifiedImageError

    from captum_attn_shapley.jobs._model import load_model

    images, _ = read_images(spec.input, str(spec.input_format), spec.image_column, spec.label_column)
    for path in images:
        try:
            with Image.open(path) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(
                f"image {path!r} of input {spec.input!r} cannot be read ({err}); "
                "remove it or replace it by an image."
            ) from None
    load_model(spec.model, images=True)
