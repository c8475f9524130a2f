#!/usr/bin/env python3
"""Command-line program: ``captum-attn-shapley explain "some text"``: the parser and the dispatch to
one module per command (:mod:`~captum_attn_shapley.cli.explain`, :mod:`~captum_attn_shapley.cli.compare`,
:mod:`~captum_attn_shapley.cli.tcav`, :mod:`~captum_attn_shapley.cli.insights`,
:mod:`~captum_attn_shapley.cli.generate`,
:mod:`~captum_attn_shapley.cli.explain_dataset`)."""

import argparse
import sys
from typing import Callable, Dict, Optional, Sequence

from captum_attn_shapley.cli import compare, explain, explain_dataset, generate, insights, tcav
from captum_attn_shapley.cli._common import PROG, Parser, UserError, exit_with_user_error

#: Each command by name: the function that runs it.
COMMANDS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "explain": explain.run,
    "compare": compare.run,
    "tcav": tcav.run,
    "insights": insights.run,
    "generate": generate.run,
    "explain-dataset": explain_dataset.run,
}
#: Errors of the library and of the files it reads whose message is written for people (the library's
#: validation, missing or unreadable files, missing optional packages): reported like user errors.
REPORTED_ERRORS = (ValueError, OSError, ImportError)
#: Help of ``--debug``, accepted before or after the command.
DEBUG_HELP = "show the traceback of an error instead of its two-line message"


def build_parser() -> argparse.ArgumentParser:
    r"""
    The program's argument parser, one sub-command per module.

    Returns:
        argparse.ArgumentParser: The parser (a :class:`~captum_attn_shapley.cli._common.Parser`:
        a bad command line is reported in two lines with exit status 2).
    """
    parser = Parser(
        prog=PROG, description="Explain a transformer classifier's prediction with attention-game Shapley values."
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in (explain, compare, tcav, insights, generate, explain_dataset):
        command.add_parser(sub)
    for command_parser in sub.choices.values():  # SUPPRESS: a --debug before the command survives
        command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    r"""
    Entry point of the ``captum-attn-shapley`` program.

    Every argument is checked before a model is loaded, and what depends on the model (lengths,
    classes) once it is loaded, before anything is computed. A user error (a bad option or value,
    a missing file or folder, an unknown class, or a library error about the input) is printed as
    two plain lines on stderr, what was wrong and how to fix it, and the program exits with status
    2, as argparse does; ``--debug`` prints the traceback instead.

    Args:
        argv (sequence of str, optional): Arguments (default: ``sys.argv[1:]``).

    Returns:
        int: The exit status (0, or 130 when interrupted).

    Raises:
        UserError: After a user error, printed on stderr: a ``SystemExit`` with status 2.

    Examples::

        $ captum-attn-shapley explain "the flight was late and the crew was rude"
        $ captum-attn-shapley explain "great crew" --methods all --html explanation.html
        $ captum-attn-shapley explain "great crew" --report explanation.html
        $ captum-attn-shapley compare --view short --n 50 --methods grad-att-max-mutual kernelshap --out results
        $ captum-attn-shapley tcav --report tcav.html
        $ captum-attn-shapley tcav --task words --layers 3 --repeats 20 --report tcav-words.html
        $ captum-attn-shapley insights --task image --port 8080
        $ captum-attn-shapley generate "a=3 k=7 m=1 ; k=" --report generation.html
        $ captum-attn-shapley explain-dataset tweets.parquet --out job --workers 2 --metrics
        $ captum-attn-shapley explain-dataset --status job
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    prog = f"{PROG} {args.command}"
    try:
        return COMMANDS[args.command](args)
    except UserError as err:
        exit_with_user_error(err, prog, debug)
    except REPORTED_ERRORS as err:
        if debug:
            raise
        error = UserError(str(err) or type(err).__name__, "Run the command again with --debug for the traceback.")
        error.__cause__ = err
        exit_with_user_error(error, prog)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
