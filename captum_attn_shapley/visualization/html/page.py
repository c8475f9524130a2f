#!/usr/bin/env python3
"""The page around a report: title, settings, inline CSS, the environment footer, and writing it to disk."""

import datetime
import html
import pathlib
import platform
from typing import Any, Dict, Mapping, Optional, Union

from captum_attn_shapley.visualization.html._format import setting_text
from captum_attn_shapley.visualization.token_table import HIGHLIGHT_CSS

#: Packages whose versions every report lists.
REPORTED_PACKAGES = (
    "captum-attn-shapley",
    "captum",
    "torch",
    "transformers",
    "numpy",
    "scipy",
    "scikit-learn",
    "matplotlib",
)


def environment_info() -> Dict[str, str]:
    r"""
    Python, the platform and the versions of :data:`REPORTED_PACKAGES` (for the footer of
    a report).

    Returns:
        dict: Name -> version (``"not installed"`` where missing).
    """
    from importlib import metadata

    info = {"python": platform.python_version(), "platform": platform.platform()}
    for name in REPORTED_PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "not installed"
    return info


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1300px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.example { border-top: 2px solid #eee; padding-top: 0.6em; margin-top: 1.2em; }
.prediction { margin: 0.3em 0 0.6em 0; }
.source { font-style: italic; color: #333; }
.maps { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.maps figure { margin: 0; text-align: center; font-size: 0.85em; }
.maps img { display: block; margin-bottom: 4px; }
img.figure { max-width: 100%; }
.sig { font-weight: bold; color: #1b4f9c; }
.ns { color: #888; }
.ok { color: #1a7f37; }
.wrong { color: #b42318; }
footer { margin-top: 3em; font-size: 0.85em; color: #555; }
"""


def page_html(title: str, body: str, model_name: Optional[str], settings: Optional[Mapping[str, Any]]) -> str:
    """The HTML document around ``body``: title, model, generation time, settings table, CSS, footer."""
    now = datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
    meta = [f"generated {html.escape(now)}"]
    if model_name:
        meta.insert(0, f"model: <b>{html.escape(str(model_name))}</b>")
    parts = [f'<h1>{html.escape(title)}</h1>\n<p class="meta">{" · ".join(meta)}</p>']
    if settings:
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(setting_text(v))}</td></tr>"
            for k, v in settings.items()
        )
        parts.append(f'<h2>Settings</h2>\n<table class="settings">{rows}</table>')
    parts.append(body)
    versions = ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in environment_info().items())
    parts.append(f"<footer>Made with captum-attn-shapley. Environment: {versions}.</footer>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}{HIGHLIGHT_CSS}</style></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def write_report(path: Union[str, pathlib.Path], page: str) -> pathlib.Path:
    r"""
    Writes a report page (UTF-8), creating the parent directories.

    Args:
        path (str or Path): The ``.html`` file.
        page (str): The page of :func:`attribution_report`, :func:`comparison_report` or
                    :func:`tcav_report`.

    Returns:
        pathlib.Path: The path written.
    """
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target
