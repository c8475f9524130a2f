"""What the commands share: user errors (two plain lines on stderr, exit status 2), the parser that
reports its own errors that way, argparse types for numbers, and class indices from the command line.

A user error is a :class:`UserError`: what was wrong and how to fix it. The program's entry point
(:func:`~captum_attn_shapley.cli.main.main`) prints it as two lines and exits with status 2, as
argparse does for its own errors; ``--debug`` shows the traceback instead.
"""

import argparse
import math
import sys
import traceback
from typing import IO, Callable, Dict, NoReturn, Optional

#: The exit status of a user error (argparse's, for a bad command line).
USER_ERROR_STATUS = 2
#: The program's name, the start of every error line.
PROG = "captum-attn-shapley"


def _one_line(text: str) -> str:
    """``text`` with its whitespace (line breaks included) collapsed to single spaces."""
    return " ".join(str(text).split())


class UserError(SystemExit):
    r"""
    A mistake in the command line or its input, reported as two plain lines and exit status 2.

    A :class:`SystemExit` (status 2), like argparse's own errors, so that a command run outside the
    entry point still exits with the right status; ``str(error)`` is the message.

    Args:
        problem (str): What was wrong, naming the option and the value given.
        fix (str): How to fix it (what is allowed). Default: ``""``
        prog (str, optional): The command, e.g. ``"captum-attn-shapley explain"``. Default: set by
                    the entry point.

    Examples::

        >>> raise UserError("--n 0 is not a positive integer", "Give --n 1 or more.")
    """

    def __init__(self, problem: str, fix: str = "", prog: Optional[str] = None) -> None:
        super().__init__(USER_ERROR_STATUS)
        self.problem = _one_line(problem)
        self.fix = _one_line(fix)
        self.prog = prog

    def __str__(self) -> str:
        return f"{self.problem} {self.fix}".strip()

    def lines(self) -> str:
        r"""
        The message as printed: ``"<prog>: error: <problem>"`` and, on a second line, the fix.

        Returns:
            str: One or two lines, ending with a newline.
        """
        text = f"{self.prog or PROG}: error: {self.problem}\n"
        return text + (f"{self.fix}\n" if self.fix else "")


def exit_with_user_error(
    error: UserError, prog: str, debug: bool = False, stream: Optional[IO[str]] = None
) -> NoReturn:
    r"""
    Reports a user error and exits: two plain lines on stderr (``--debug``: the traceback), status 2.

    Args:
        error (UserError): The error; its ``__cause__``, if any, is part of the traceback.
        prog (str): The command, used where the error names none.
        debug (bool): Print the traceback instead of the two lines. Default: False
        stream (IO[str], optional): Where to print. Default: ``sys.stderr``.

    Raises:
        UserError: Always (a ``SystemExit`` with status 2).
    """
    stream = sys.stderr if stream is None else stream
    error.prog = error.prog or prog
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__, file=stream)
    else:
        stream.write(error.lines())
    stream.flush()
    raise error


class Parser(argparse.ArgumentParser):
    r"""
    An :class:`argparse.ArgumentParser` whose errors are user errors: two lines (the problem, and
    where the options are listed) instead of the usage block, and exit status 2.
    """

    def error(self, message: str) -> NoReturn:
        r"""
        Reports a bad command line (called by argparse).

        Args:
            message (str): argparse's message, e.g. ``"argument --n: must be a positive integer"``.

        Raises:
            UserError: Always.
        """
        fix = f"Run '{self.prog} --help' to see the options."
        exit_with_user_error(UserError(message, fix, prog=self.prog), self.prog)


def _number(text: str, kind: Callable[[str], float], what: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def int_at_least(minimum: int, what: str = "") -> Callable[[str], int]:
    r"""
    An argparse ``type`` for integers of at least ``minimum``.

    Args:
        minimum (int): The smallest value allowed.
        what (str): How the message describes the allowed values. Default: ``"an integer >= minimum"``.

    Returns:
        Callable[[str], int]: The type function; it raises ``argparse.ArgumentTypeError``, which
        argparse reports as ``argument --n: must be ..., got '0'``.

    Examples::

        >>> parser.add_argument("--repeats", type=int_at_least(2), default=10)
    """
    what = what or (
        "a positive integer"
        if minimum == 1
        else "an integer, 0 or more"
        if minimum == 0
        else f"an integer >= {minimum}"
    )

    def parse(text: str) -> int:
        value = int(_number(text, int, what))
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


#: ``type=`` of counts and sizes: 1 or more.
positive_int = int_at_least(1)
#: ``type=`` of seeds and counts that may be 0.
non_negative_int = int_at_least(0)


def zero_or_at_least(minimum: int) -> Callable[[str], int]:
    r"""
    An argparse ``type`` for an integer that is 0 (off) or at least ``minimum``.

    Args:
        minimum (int): The smallest value allowed other than 0.

    Returns:
        Callable[[str], int]: The type function.
    """
    what = f"0 or an integer >= {minimum}"
    at_least = int_at_least(0, what)

    def parse(text: str) -> int:
        value = at_least(text)
        if 0 < value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


def int_between(low: int, high: int) -> Callable[[str], int]:
    r"""
    An argparse ``type`` for an integer in ``[low, high]``.

    Args:
        low (int): The smallest value allowed.
        high (int): The largest value allowed.

    Returns:
        Callable[[str], int]: The type function.
    """
    what = f"an integer between {low} and {high}"
    at_least = int_at_least(low, what)

    def parse(text: str) -> int:
        value = at_least(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


def float_between(low: float, high: float, open_interval: bool = False) -> Callable[[str], float]:
    r"""
    An argparse ``type`` for a number in ``[low, high]`` (or ``(low, high)``).

    Args:
        low (float): The lower end.
        high (float): The upper end.
        open_interval (bool): Exclude both ends. Default: False

    Returns:
        Callable[[str], float]: The type function.
    """
    what = f"a number between {low:g} and {high:g}" + (", both excluded" if open_interval else "")

    def parse(text: str) -> float:
        value = float(_number(text, float, what))
        inside = low < value < high if open_interval else low <= value <= high
        if not inside:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = "float"
    return parse


#: ``type=`` of percentages (bins of the faithfulness metrics).
percentage = float_between(0, 100)
#: ``type=`` of a significance level.
probability = float_between(0, 1, open_interval=True)
#: ``type=`` of a TCP port.
port = int_between(1, 65535)


def target_index(
    target: Optional[str],
    id2label: Dict[int, str],
    what: str = "target",
    num_classes: Optional[int] = None,
    option: Optional[str] = None,
) -> Optional[int]:
    r"""
    A class given on the command line, as an index or a label name (case ignored).

    Args:
        target (str, optional): The index (``"1"``) or the name (``"positive"``).
        id2label (dict[int, str]): The model's class names.
        what (str): What the class is, for the message. Default: ``"target"``
        num_classes (int, optional): The model's number of classes; an index outside
                    ``[0, num_classes)`` is refused. Default: no range check.
        option (str, optional): The option, without its dashes. Default: ``what``.

    Returns:
        int or None: The index; None for None.

    Raises:
        UserError: For an unknown name or an index out of range.
    """
    if target is None:
        return None
    option = option or what
    names = ", ".join(f"{k}: {v}" for k, v in sorted(id2label.items()))
    fix = f"Give one of the model's classes, by index or name ({names})."
    if target.lstrip("-").isdigit():
        index = int(target)
        if num_classes is not None and not 0 <= index < num_classes:
            raise UserError(f"--{option}: {what} {index} out of range: the model has {num_classes} classes.", fix)
        return index
    by_name = {str(v).lower(): int(k) for k, v in id2label.items()}
    if target.lower() not in by_name:
        raise UserError(f"--{option}: unknown {what} {target!r}: the model has no class of that name.", fix)
    return by_name[target.lower()]
