#!/usr/bin/env python3
"""The user's cache directory of this package (embedded models, TokenTCAV's CAVs)."""

import os
import pathlib


def cache_dir() -> pathlib.Path:
    r"""Directory where the embedded models (and TokenTCAV's CAVs) are cached.

    Returns:
        pathlib.Path: ``$CAPTUM_ATTN_SHAPLEY_CACHE`` if set, else
        ``$XDG_CACHE_HOME/captum_attn_shapley``, else ``~/.cache/captum_attn_shapley``.
        The directory is not created.
    """
    explicit = os.environ.get("CAPTUM_ATTN_SHAPLEY_CACHE")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "captum_attn_shapley"
