"""``captum-attn-shapley insights``: Captum Insights on an embedded model."""

import argparse

from captum_attn_shapley.cli._common import UserError, non_negative_int, port, positive_int


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    r"""
    Adds the ``insights`` command and its options.

    Args:
        sub: The program's sub-command parsers.
    """
    insights = sub.add_parser(
        "insights",
        help="serve Captum Insights on an embedded model, with our methods next to Captum's "
        "(needs captum 0.8: pip install 'captum-attn-shapley[insights]')",
    )
    insights.add_argument(
        "--task",
        default="text",
        choices=["text", "image"],
        help="text: the tweet sentiment classifier (default); image: the texture ViT",
    )
    insights.add_argument(
        "--n", type=positive_int, default=4, help="examples (default 4: Insights shows four at a time)"
    )
    insights.add_argument("--seed", type=non_negative_int, default=0, help="which examples (default 0)")
    insights.add_argument(
        "--port", type=port, default=None, help="port on localhost, 1 to 65535 (default: a free one)"
    )


def run(args: argparse.Namespace) -> int:
    r"""
    Serves Captum Insights until interrupted.

    Args:
        args (argparse.Namespace): The parsed options.

    Returns:
        int: The exit status.
    """
    from captum_attn_shapley.demos.insights_app import serve_embedded
    from captum_attn_shapley.visualization.insights import InsightsUnavailableError

    try:
        serve_embedded(args.task, n=args.n, seed=args.seed, port=args.port, blocking=True)
    except InsightsUnavailableError as err:
        raise UserError(str(err)) from err  # what is missing, and how to install it
    return 0
