"""How numbers are written in tables, reports and file names (one style for the whole package)."""

import math
from typing import Any

import numpy as np


def format_number(value: Any, digits: int = 3, missing: str = "–") -> str:
    r"""
    A number for a table: ``digits`` decimals, scientific notation for small non-zero values
    (below ``10 ** -digits``), ``missing`` for None and NaN, ``yes`` / ``no`` for booleans and
    ``str`` for anything else.

    Args:
        value (Any): The value.
        digits (int): Decimals. Default: 3
        missing (str): What None and NaN read as. Default: ``"–"``

    Returns:
        str: The text.
    """
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return missing
        if value != 0 and abs(value) < 10**-digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


def format_rate(value: float) -> str:
    r"""A throughput (examples per second): no decimals from 100, two from 1, three significant below."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def percent_slug(k: float) -> str:
    r"""A percentage as it appears in column and file names: ``20`` -> ``"20"``, ``2.5`` -> ``"2_5"``."""
    return f"{k:g}".replace(".", "_")
