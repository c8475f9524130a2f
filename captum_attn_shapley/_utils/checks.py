"""Validation of named options (``game=``, ``weighting=``, ``estimator=``): one rule, one message."""

from typing import Sequence, TypeVar

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
