#!/usr/bin/env python3
"""Readable per-token attribution tables: plain text for the terminal, self-contained HTML."""

import html
from typing import Dict, List, Mapping, Optional, Sequence, Tuple


def format_token_table(
    tokens: Sequence[str], scores: Mapping[str, Sequence[float]], players: Sequence[bool]
) -> str:
    r"""
    A plain-text table: one row per token, one column per method.

    Args:
        tokens (sequence of str): The word pieces.
        scores (mapping of str to sequence of float): Method name -> one score per token.
        players (sequence of bool): Which tokens are players (others print as ``-``).

    Returns:
        str: The table, with a header line and aligned columns.
    """
    names = list(scores)
    token_width = max([len("token")] + [len(t) for t in tokens])
    widths = [max(len(n), 10) for n in names]
    header = f"{'#':>3}  {'token':<{token_width}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths))
    lines = [header, "-" * len(header)]
    for i, token in enumerate(tokens):
        cells = []
        for name, width in zip(names, widths):
            cells.append(f"{scores[name][i]:>{width}.4f}" if players[i] else f"{'-':>{width}}")
        lines.append(f"{i:>3}  {token:<{token_width}}  " + "  ".join(cells))
    return "\n".join(lines)


def _score_rgb(value: float, vmax: float, cmap: str) -> Tuple[int, int, int]:
    """The 0-255 RGB of one score (see :func:`score_colour`)."""
    from captum_attn_shapley.visualization.heatmaps import token_colours

    if not vmax > 0 or value != value:
        return 255, 255, 255
    r, g, b = (int(round(255 * float(c))) for c in token_colours([value], cmap, vmax)[0, :3])
    return r, g, b


def score_colour(value: float, vmax: float, cmap: str = "bwr") -> str:
    r"""
    The CSS background colour of one score on a diverging scale centred on 0 (the colours
    of :func:`captum_attn_shapley.visualization.heatmaps.token_colours`: red for positive, blue for
    negative, white for zero, full strength at ``|value| = vmax``).

    Args:
        value (float): The score.
        vmax (float): The scale's limit (e.g. the largest ``|score|`` of the method); 0 or
                    less gives white.
        cmap (str): A diverging matplotlib colour map. Default: ``"bwr"``

    Returns:
        str: ``"rgb(r,g,b)"`` with 0-255 channels.
    """
    return _css_rgb(_score_rgb(value, vmax, cmap))


def _css_rgb(rgb: Tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*rgb)


def highlighted_tokens_html(
    tokens: Sequence[str],
    scores: Sequence[float],
    players: Optional[Sequence[bool]] = None,
    vmax: Optional[float] = None,
    cmap: str = "bwr",
) -> str:
    r"""
    The tokens as HTML ``<span>`` elements, each with its score's background colour
    (:func:`score_colour`) and the score as tooltip and ``data-score`` attribute; tokens
    that are not players are greyed out. Token text is HTML-escaped.

    Args:
        tokens (sequence of str): The tokens.
        scores (sequence of float): One score per token.
        players (sequence of bool, optional): Which tokens carry a score. Default: all.
        vmax (float, optional): The colour scale's limit. Default: the largest ``|score|`` of
                    the players.
        cmap (str): Diverging colour map. Default: ``"bwr"``

    Returns:
        str: The spans, separated by spaces.
    """
    values = [float(v) for v in scores]
    if len(values) != len(tokens):
        raise ValueError(f"Got {len(tokens)} tokens but {len(values)} scores: give one score per token.")
    flags = [True] * len(tokens) if players is None else [bool(p) for p in players]
    if vmax is None:
        vmax = max_abs_score(values, flags)
    from captum_attn_shapley.visualization.heatmaps import readable_text_colour

    spans = []
    for token, value, player in zip(tokens, values, flags):
        if player:
            rgb = _score_rgb(value, vmax, cmap)
            text_colour = readable_text_colour([c / 255 for c in rgb])
            spans.append(
                f'<span class="tok" style="background:{_css_rgb(rgb)};color:{text_colour}" '
                f'title="{value:.5g}" data-score="{value!r}">{html.escape(token)}</span>'
            )
        else:
            spans.append(f'<span class="tok off" title="not a player">{html.escape(token)}</span>')
    return " ".join(spans)


def max_abs_score(scores: Sequence[float], players: Optional[Sequence[bool]] = None) -> float:
    r"""
    The largest ``|score|`` among the players (0 if there are none): a method's colour scale.

    Args:
        scores (sequence of float): One score per token.
        players (sequence of bool, optional): Which tokens count. Default: all.

    Returns:
        float: The limit.
    """
    flags = [True] * len(scores) if players is None else players
    finite = [abs(float(v)) for v, p in zip(scores, flags) if p and float(v) == float(v)]
    return max(finite or [0.0])


def colour_legend_html(vmax: float, cmap: str = "bwr", label: str = "") -> str:
    r"""
    A colour bar in HTML and inline CSS (a gradient from ``-vmax`` through 0 to ``vmax``
    with the three values written under it).

    Args:
        vmax (float): The scale's limit.
        cmap (str): The colour map of :func:`score_colour`. Default: ``"bwr"``
        label (str): Text shown before the bar (escaped).

    Returns:
        str: A ``<span class="legend">`` element.
    """
    stops = ", ".join(score_colour(vmax * t, vmax if vmax > 0 else 1.0, cmap) for t in (-1.0, -0.5, 0.0, 0.5, 1.0))
    caption = html.escape(label) + " " if label else ""
    return (
        f'<span class="legend" data-vmax="{float(vmax)!r}">{caption}'
        f'<span class="bar" style="background:linear-gradient(to right, {stops})"></span>'
        f'<span class="ticks"><span>{-vmax:.3g}</span><span>0</span><span>{vmax:.3g}</span></span></span>'
    )


#: The CSS of the highlighted tokens and legends (shared by the HTML pages of this package).
HIGHLIGHT_CSS = """
.tok { padding: 2px 3px; border-radius: 3px; line-height: 2em; white-space: pre; }
.tok.off { color: #999; }
.legend { display: inline-block; font-size: 0.8em; color: #444; vertical-align: middle; }
.legend .bar { display: block; width: 160px; height: 10px; border: 1px solid #ccc; }
.legend .ticks { display: flex; justify-content: space-between; width: 162px; }
"""


def token_table_html(
    title: str,
    tokens: Sequence[str],
    scores: Mapping[str, Sequence[float]],
    players: Sequence[bool],
    summary: str = "",
) -> str:
    r"""
    A self-contained HTML page (no scripts, no external resources): for each method the
    text with every token highlighted by its score (normalised per method), then the
    numeric table.

    Args:
        title (str): The page title.
        tokens (sequence of str): The word pieces.
        scores (mapping of str to sequence of float): Method name -> one score per token.
        players (sequence of bool): Which tokens are players.
        summary (str): A line shown under the title (e.g. the prediction).

    Returns:
        str: The HTML document.
    """
    rows: List[str] = []
    for name, values in scores.items():
        scale = max_abs_score(values, players)
        spans = highlighted_tokens_html(tokens, values, players, scale)
        rows.append(f"<tr><th>{html.escape(name)}</th><td>{spans}</td><td>{colour_legend_html(scale)}</td></tr>")
    head = "".join(f"<th>{html.escape(n)}</th>" for n in scores)
    body: List[str] = []
    for i, token in enumerate(tokens):
        cells = "".join(f"<td>{scores[n][i]:.5f}</td>" if players[i] else "<td>-</td>" for n in scores)
        body.append(f"<tr><td>{i}</td><td>{html.escape(token)}</td>{cells}</tr>")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; }}
{HIGHLIGHT_CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(summary)}</p>
<h2>Highlighted tokens</h2>
<p>Red: pushes towards the explained class; blue: against; each method scaled to its own largest |score|.</p>
<table>{"".join(rows)}</table>
<h2>Scores</h2>
<table><tr><th>#</th><th>token</th>{head}</tr>{"".join(body)}</table>
</body></html>
"""


def scores_as_lists(scores: Mapping[str, Sequence[float]]) -> Dict[str, List[float]]:
    """Plain float lists (for JSON output)."""
    return {name: [float(v) for v in values] for name, values in scores.items()}
