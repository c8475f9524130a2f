#!/usr/bin/env python3
"""How values are written in the cells and settings of a report (HTML-escaped)."""

import html
from typing import Any

import numpy as np

from captum_attn_shapley._utils.formatting import format_number


def setting_text(value: Any) -> str:
    """A setting's value: sequences joined by commas, floats in ``%g``."""
    if isinstance(value, (list, tuple)):
        return ", ".join(setting_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def number_html(value: Any, digits: int = 4) -> str:
    """A number cell: :func:`~captum_attn_shapley._utils.formatting.format_number` with 4 decimals, escaped;
    booleans (``True`` / ``False``) and any other value as their text."""
    if isinstance(value, bool):
        return html.escape(str(value))
    return html.escape(format_number(value, digits))


def data_value(value: Any) -> str:
    """A cell's exact value, for its ``data-value`` attribute (floats in full precision)."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return html.escape(str(value), quote=True)
