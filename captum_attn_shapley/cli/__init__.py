"""The command-line program ``captum-attn-shapley`` (``python -m captum_attn_shapley.cli``)."""

from captum_attn_shapley.cli.main import main

__all__ = ["main"]
