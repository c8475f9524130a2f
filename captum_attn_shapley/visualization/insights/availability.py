#!/usr/bin/env python3
"""Whether Captum Insights can be imported here (captum 0.8 with the ``insights`` extra), and the error that
says how to get it."""

import importlib
from typing import Any, Tuple

import captum

#: How to get Insights, or what to use instead; part of every "unavailable" error.
INSIGHTS_HELP = (
    "Captum Insights ships with captum 0.8 only (it was removed in captum 0.9). Install it with "
    '`pip install "captum-attn-shapley[insights]"` (captum==0.8.0, numpy<2, flask, flask-compress, '
    "ipywidgets), or write the self-contained HTML report instead, which works with any captum: "
    '`captum-attn-shapley explain "some text" --report report.html` or the functions of '
    "`captum_attn_shapley.visualization.html`."
)


class InsightsUnavailableError(ImportError):
    r"""Raised when Captum Insights (or its server's requirements) cannot be imported."""


def insights_available() -> bool:
    r"""
    Whether Captum Insights and its Flask server can be imported here.

    Returns:
        bool: True with captum 0.8 and the ``insights`` extra installed.
    """
    try:
        insights_modules()
    except InsightsUnavailableError:
        return False
    return True


def check_insights_available() -> None:
    r"""
    Raises:
        InsightsUnavailableError: Without Captum Insights (captum >= 0.9), or without one of
                    its dependencies, with the install command.
    """
    insights_modules()


def insights_modules() -> Tuple[Any, Any, Any]:
    """captum.insights, its attr_vis.config and its features, or a clear error."""
    try:
        insights = importlib.import_module("captum.insights")
        config = importlib.import_module("captum.insights.attr_vis.config")
        features = importlib.import_module("captum.insights.attr_vis.features")
        importlib.import_module("captum.insights.attr_vis.server")
    except ImportError as err:
        missing = getattr(err, "name", None) or str(err)
        if missing.startswith("captum"):
            reason = f"captum {captum.__version__} has no `captum.insights`."
        else:
            reason = f"Captum Insights needs the module {missing!r}, which is not installed."
        raise InsightsUnavailableError(f"{reason} {INSIGHTS_HELP}") from err
    return insights, config, features
