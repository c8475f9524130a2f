"""Validation of named options (``game=``, ``weighting=``, ``estimator=``) and of names that become
file names in a cache: one rule, one message."""

import re
from typing import Any, Sequence, TypeVar

_T = TypeVar("_T")


def check_choice(value: _T, choices: Sequence[str], option: str, alternative: str = "") -> _T:
    r"""
    Validates an option that takes one of a few names.

    Args:
        value (Any): The given value.
        choices (sequence of str): The accepted names.
        option (str): The option's name, for the message (e.g. ``"weighting"``).
        alternative (str): What else is accepted, appended to the message (e.g. ``" or a
                    callable game(m, coalitions) -> values"``).

    Returns:
        Any: ``value``, unchanged.

    Examples::

        >>> check_choice("attention", ("attention", "grad_attention"), "weighting")
        'attention'
    """
    if value not in choices:
        raise ValueError(f"Unknown {option} {value!r}: use one of {list(choices)}{alternative}.")
    return value


#: A name that becomes one file or folder name inside a cache: ASCII letters, digits and ``_ + = - .``,
#: not starting with a dot (no path separator, so it cannot leave the cache directory).
_FILE_NAME = re.compile(r"[A-Za-z0-9_+=-][A-Za-z0-9_.+=-]*")
#: The longest such name (file systems allow 255 bytes; the CAV file names join several).
MAX_FILE_NAME = 100


def check_file_name(value: Any, argument: str, example: str) -> str:
    r"""
    Validates a name that becomes one file or folder name inside a cache directory (a model id, a
    concept id, a layer name), so that nothing is ever written outside that directory.

    Args:
        value (Any): The given name (an ``int`` or a ``str``).
        argument (str): What the name is, for the message (e.g. ``"model_id"``).
        example (str): A valid name to suggest in the message.

    Returns:
        str: ``str(value)``, unchanged.

    Raises:
        ValueError: For a name with anything but ASCII letters, digits and ``_ + = - .``, one that
            starts with a dot or holds ``..``, an empty one, or one longer than :data:`MAX_FILE_NAME`
            characters: a path separator, ``..`` or an absolute path would reach outside the cache.

    Examples::

        >>> check_file_name("bert-sst2", "model_id", "my-model")
        'bert-sst2'
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{argument} must be an int or a str, got {type(value).__name__} {value!r}.")
    text = str(value)
    if not _FILE_NAME.fullmatch(text) or ".." in text or len(text) > MAX_FILE_NAME:
        raise ValueError(
            f"{argument} {text!r} cannot name a file in the cache: use only ASCII letters, digits and "
            f"'_', '-', '+', '=', '.' (no '/', '\\', '..' or leading '.', at most {MAX_FILE_NAME} "
            f"characters), e.g. {example!r}."
        )
    return text
