#!/usr/bin/env python3
"""Command-line program: ``captum-attn-shapley explain "some text"``: the parser and the dispatch to
one module per command (:mod:`~captum_attn_shapley.cli.explain`, :mod:`~captum_attn_shapley.cli.compare`,
:mod:`~captum_attn_shapley.cli.tcav`, :mod:`~captum_attn_shapley.cli.insights`)."""

import argparse
import sys
from typing import Callable, Dict, Optional, Sequence

from captum_attn_shapley.cli import compare, explain, insights, tcav

#: Each command by name: the function that runs it.
COMMANDS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "explain": explain.run,
    "compare": compare.run,
    "tcav": tcav.run,
    "insights": insights.run,
}


def build_parser() -> argparse.ArgumentParser:
    r"""
    The program's argument parser, one sub-command per module.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(
        prog="captum-attn-shapley",
        description="Explain a transformer classifier's prediction with attention-game Shapley values.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (explain, compare, tcav, insights):
        command.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    r"""
    Entry point of the ``captum-attn-shapley`` program.

    Args:
        argv (sequence of str, optional): Arguments (default: ``sys.argv[1:]``).

    Returns:
        int: The exit status.

    Examples::

        $ captum-attn-shapley explain "the flight was late and the crew was rude"
        $ captum-attn-shapley explain "great crew" --methods all --html explanation.html
        $ captum-attn-shapley explain "great crew" --report explanation.html
        $ captum-attn-shapley compare --view short --n 50 --methods grad-att-max-mutual kernelshap --out results
        $ captum-attn-shapley tcav --report tcav.html
        $ captum-attn-shapley tcav --task words --layers 3 --repeats 20 --report tcav-words.html
        $ captum-attn-shapley insights --task image --port 8080
    """
    args = build_parser().parse_args(argv)
    run = COMMANDS.get(args.command)
    if run is None:  # pragma: no cover - argparse enforces the sub-command
        return 2
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
