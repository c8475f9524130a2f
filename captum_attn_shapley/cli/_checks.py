"""The commands' checks of their arguments, each a :class:`~captum_attn_shapley.cli._common.UserError`
that names the option, the value and the fix: before a model is loaded (text, output paths, the model's
directory), and once it is loaded but before anything is computed (lengths, classes).
"""

import contextlib
import pathlib
import re
from typing import Any, Dict, Iterator, Optional, Union

from torch import nn

from captum_attn_shapley._utils.io import unwritable_reason
from captum_attn_shapley._utils.model_checks import max_text_length
from captum_attn_shapley.cli._common import UserError

#: A Hugging Face model id: ``name`` or ``namespace/name`` (letters, digits, ``-_.``).
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")
#: What a local model directory must hold, and where ``--model`` may point.
MODEL_FIX = (
    "Give a directory saved with save_pretrained (it holds config.json, the weights and the tokenizer), "
    "or a Hugging Face model id such as 'org/name' (needs the hub, or its files already in the local cache)."
)


def check_text(text: str, option: str = "the text") -> str:
    r"""
    Checks a text given on the command line: not empty, and valid UTF-8.

    Python decodes command-line bytes that are not UTF-8 into lone surrogates (``'caf\udce9'``
    for the Latin-1 ``b'caf\xe9'``), which tokenizers refuse with a ``TypeError``.

    Args:
        text (str): The text.
        option (str): How the message names it. Default: ``"the text"``

    Returns:
        str: ``text``, unchanged.

    Raises:
        UserError: For an empty text or one that is not UTF-8.
    """
    if not text.strip():
        raise UserError(f"{option} is empty.", 'Give the text to classify and explain, e.g. "the crew was rude".')
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        char = text[err.start]
        byte = f"byte 0x{ord(char) - 0xDC00:02x}" if 0xDC80 <= ord(char) <= 0xDCFF else repr(char)
        raise UserError(
            f"{option} is not valid UTF-8 ({byte} at character {err.start}).",
            "Pass UTF-8 text: convert it first, e.g. with iconv -f latin1 -t utf-8, or set a UTF-8 locale.",
        ) from None
    return text


def check_output(path: Optional[Union[str, pathlib.Path]], option: str, directory: bool = False) -> None:
    r"""
    Checks, before the computation, that an output file (or directory) can be written.

    Args:
        path (str or pathlib.Path, optional): The output; None: nothing to check.
        option (str): The option, e.g. ``"--html"``.
        directory (bool): ``path`` is a directory, created if missing (its parent must exist).
                    Default: False

    Raises:
        UserError: If its folder does not exist or is not writable, or it is a directory where a
            file is expected (or the reverse).
    """
    if path is None:
        return
    reason = unwritable_reason(path, directory=directory)
    if reason is not None:
        folder = "the folder it goes in" if not directory else "its parent folder"
        raise UserError(
            f"{option} {str(path)!r} cannot be written: {reason}.",
            f"Choose a path whose folder exists and is writable, or create {folder} first (mkdir -p).",
        )


def check_model_source(value: Optional[str], option: str = "--model") -> None:
    r"""
    Checks ``--model`` before anything is loaded: an existing model directory, or a name that can be a
    Hugging Face model id (which is looked up when the model is loaded).

    Args:
        value (str, optional): The option's value; None: the embedded model.
        option (str): The option. Default: ``"--model"``

    Raises:
        UserError: For a path that does not exist, a file, or a directory without ``config.json``.
    """
    if value is None:
        return
    path = pathlib.Path(value).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{option} {value!r} is a file, not a model directory.", MODEL_FIX)
        if not (path / "config.json").is_file():
            raise UserError(f"{option} {value!r} holds no config.json: it is not a saved model.", MODEL_FIX)
        return
    if not _HUB_ID.fullmatch(value) or ".." in value or "--" in value:
        raise UserError(f"{option} {value!r}: no such directory (and not a Hugging Face model id).", MODEL_FIX)


@contextlib.contextmanager
def loading(value: Optional[str], option: str = "--model") -> Iterator[None]:
    r"""
    Turns the errors of loading a model given on the command line into a user error.

    Args:
        value (str, optional): The option's value; None (the embedded model): errors pass through.
        option (str): The option. Default: ``"--model"``

    Yields:
        None

    Raises:
        UserError: If loading raises ``OSError`` (missing files, a hub id that cannot be found or
            reached) or ``ValueError`` (a config of an unknown kind).
    """
    try:
        yield
    except (OSError, ValueError) as err:
        if value is None:
            raise
        reason = " ".join(str(err).split()) or type(err).__name__
        raise UserError(f"{option} {value!r} could not be loaded: {reason}", MODEL_FIX) from err


def check_max_length(value: Optional[int], model: nn.Module, default: int, option: str = "--max-length") -> int:
    r"""
    The truncation length: ``value`` if the model takes that many tokens, else a user error; when
    not given, ``default`` capped at the model's limit.

    Args:
        value (int, optional): The option's value (argparse has checked it is positive).
        model (Module): The loaded model.
        default (int): The length when the option is not given (capped at the model's limit).
        option (str): The option. Default: ``"--max-length"``

    Returns:
        int: The length to truncate to.

    Raises:
        UserError: If ``value`` is more than the model's positions.
    """
    limit, _ = max_text_length(model)  # RoBERTa-like models: positions start after the padding index
    if value is None:
        return default if limit is None else min(default, limit)
    if limit is not None and value > limit:
        raise UserError(
            f"{option} {value} is more than the {limit} positions {type(model).__name__} accepts.",
            f"Give {option} {limit} or less, or leave it out (it is then at most the model's limit).",
        )
    return value


def num_classes(model: nn.Module) -> int:
    r"""
    A classifier's number of classes: its config's ``num_labels``, else the names of ``id2label``.

    Args:
        model (Module): The model.

    Returns:
        int: The number of classes (0 if the model declares none).
    """
    config = getattr(model, "config", None)
    count = getattr(config, "num_labels", None)
    return int(count) if isinstance(count, int) else len(getattr(config, "id2label", None) or {})


def check_labels(labels: Any, model: nn.Module, id2label: Dict[int, str], option: str) -> None:
    r"""
    Checks that gold labels are classes of the model (else F1 and accuracy would compare unrelated
    indices).

    Args:
        labels (iterable of int): The labels.
        model (Module): The model.
        id2label (dict[int, str]): The model's class names.
        option (str): Where the labels come from, e.g. ``"--data 'data.csv'"``.

    Raises:
        UserError: For a label outside ``[0, num_labels)``.
    """
    count = num_classes(model)
    unknown = sorted({int(v) for v in labels if not 0 <= int(v) < count})
    if unknown:
        names = ", ".join(f"{k}: {v}" for k, v in sorted(id2label.items()))
        raise UserError(
            f"{option} has labels {unknown} that {type(model).__name__} does not have (its classes are {names}).",
            "Give labels that are the model's class indices, or the model trained on these labels (--model).",
        )
