"""``captum-attn-shapley generate``: a causal language model's continuation of a prompt, explained per token."""

import argparse
import json
import pathlib
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

from captum_attn_shapley.cli._checks import check_model_source, check_output, check_text, loading
from captum_attn_shapley.cli._common import int_at_least
from captum_attn_shapley.visualization.token_table import format_token_table, scores_as_lists, token_table_html

#: The games and weightings the command offers (those of :class:`~captum_attn_shapley.attr.LLMAttnGradShapley`).
GAMES = ("cls", "mutual", "max_mutual")
WEIGHTINGS = ("grad_attention", "attention")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    r"""
    Adds the ``generate`` command and its options.

    Args:
        sub: The program's sub-command parsers.
    """
    generate = sub.add_parser(
        "generate", help="generate a continuation of a prompt and explain each generated token"
    )
    generate.add_argument("prompt", help="the prompt to continue")
    generate.add_argument(
        "--model",
        default=None,
        help="causal language model: a Hugging Face id or local directory (AutoModelForCausalLM; default: the "
        "embedded key-value recall GPT-2, trained on first use)",
    )
    generate.add_argument(
        "--target", default=None, help="explain this continuation (teacher forced) instead of generating one"
    )
    generate.add_argument(
        "--max-new-tokens",
        type=int_at_least(1),
        default=None,
        help="tokens to generate, greedily (default: 10; 1 for the embedded recall model, whose answer is one "
        "token)",
    )
    generate.add_argument("--game", choices=GAMES, default="cls", help="the attention game (default: cls)")
    generate.add_argument(
        "--weighting", choices=WEIGHTINGS, default="grad_attention", help="the influence (default: grad_attention)"
    )
    generate.add_argument(
        "--report", type=pathlib.Path, default=None, help="also write the table as a self-contained HTML report"
    )
    generate.add_argument("--json", type=pathlib.Path, default=None, help="also write the scores as JSON")


def load_language_model(name: Any) -> Tuple[Any, Any, Dict[str, Any]]:
    r"""
    The causal language model of ``--model``: the embedded recall model when None.

    Args:
        name (str, optional): A Hugging Face id or a directory saved with ``save_pretrained``.

    Returns:
        tuple: ``(model, tokenizer, info)``, the model in eval mode.
    """
    if name is None:
        from captum_attn_shapley.demos.recall_lm import load_recall_lm

        return load_recall_lm()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(name).eval()
    return model, AutoTokenizer.from_pretrained(name), {"name_or_path": name}


def token_columns(output_tokens: List[str], token_attr: Any, seq_attr: Any) -> Dict[str, List[float]]:
    r"""
    The table's columns: one per generated token (``"1:tok"``, numbered: tokens may repeat), then their sum.

    Args:
        output_tokens (list[str]): The generated tokens.
        token_attr (array): ``(n_target, n_features)``.
        seq_attr (array): ``(n_features,)``.

    Returns:
        dict[str, list[float]]: Column name -> one value per feature.
    """
    columns = {
        f"{t + 1}:{token.strip() or repr(token)}": [float(v) for v in token_attr[t]]
        for t, token in enumerate(output_tokens)
    }
    columns["sum"] = [float(v) for v in seq_attr]
    return columns


def _array(values: Any) -> "np.ndarray[Any, Any]":
    """A result's attributions as an array (captum 0.8 keeps tensors, 0.9 arrays)."""
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def run(args: argparse.Namespace) -> int:
    r"""
    Generates (or reads ``--target``), explains every generated token, prints the table and writes the files.

    Args:
        args (argparse.Namespace): The parsed options.

    Returns:
        int: The exit status.
    """
    from transformers.utils import logging as hf_logging

    from captum_attn_shapley.attr import LLMAttnGradShapley
    from captum_attn_shapley.attr.llm_attn_grad_shapley import DEFAULT_GEN_ARGS

    hf_logging.disable_progress_bar()
    check_text(args.prompt, "the prompt")
    if args.target is not None:
        check_text(args.target, "--target")
    for option in ("report", "json"):
        check_output(getattr(args, option), f"--{option}")
    check_model_source(args.model)
    with loading(args.model):
        model, tokenizer, info = load_language_model(args.model)
    explainer = LLMAttnGradShapley(model, tokenizer, game=args.game, weighting=args.weighting)
    gen_args = None
    if args.target is None:
        default_new = 1 if args.model is None else DEFAULT_GEN_ARGS["max_new_tokens"]
        gen_args = dict(DEFAULT_GEN_ARGS, max_new_tokens=args.max_new_tokens or default_new)
    result = explainer.attribute(args.prompt, target=args.target, gen_args=gen_args)
    token_attr, seq_attr = _array(result.token_attr), _array(result.seq_attr)
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    players = [token not in special for token in result.input_tokens]
    columns = token_columns(list(result.output_tokens), token_attr, seq_attr)
    variant = f"{args.game} game, {args.weighting} weighting"
    summary = (
        f"continuation: {''.join(result.output_tokens)!r} ({len(result.output_tokens)} tokens, "
        f"{'teacher forced' if args.target is not None else 'generated greedily'}); {variant}; "
        f"model: {info.get('name_or_path')}"
    )
    print(summary)
    print()
    print(format_token_table(list(result.input_tokens), columns, players))
    if args.report is not None:
        title = f"Explanation of the continuation of: {args.prompt}"
        args.report.write_text(token_table_html(title, list(result.input_tokens), columns, players, summary))
        print(f"\nwrote {args.report}")
    if args.json is not None:
        payload = {
            "prompt": args.prompt,
            "input_tokens": list(result.input_tokens),
            "output_tokens": list(result.output_tokens),
            "players": players,
            "game": args.game,
            "weighting": args.weighting,
            "scores": scores_as_lists(columns),
        }
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0
