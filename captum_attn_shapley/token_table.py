#!/usr/bin/env python3
"""Readable per-token attribution tables: plain text for the terminal, self-contained HTML."""
import html
from typing import Dict, List, Mapping, Sequence


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
    header = f"{'#':>3}  {'token':<{token_width}}  " + "  ".join(
        f"{n:>{w}}" for n, w in zip(names, widths)
    )
    lines = [header, "-" * len(header)]
    for i, token in enumerate(tokens):
        cells = []
        for name, width in zip(names, widths):
            cells.append(f"{scores[name][i]:>{width}.4f}" if players[i] else f"{'-':>{width}}")
        lines.append(f"{i:>3}  {token:<{token_width}}  " + "  ".join(cells))
    return "\n".join(lines)


def _colour(value: float, scale: float) -> str:
    """Diverging colour: green for positive, red for negative, white for zero."""
    if scale <= 0:
        return "rgba(255,255,255,0)"
    alpha = min(abs(value) / scale, 1.0) * 0.85
    return f"rgba(0,150,60,{alpha:.3f})" if value >= 0 else f"rgba(200,30,30,{alpha:.3f})"


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
        scale = max([abs(v) for v, p in zip(values, players) if p] or [0.0])
        spans = []
        for token, value, player in zip(tokens, values, players):
            style = f"background:{_colour(value, scale)}" if player else "color:#999"
            tip = f"{value:.5f}" if player else "not a player"
            spans.append(f'<span class="tok" style="{style}" title="{tip}">{html.escape(token)}</span>')
        rows.append(f"<tr><th>{html.escape(name)}</th><td>{' '.join(spans)}</td></tr>")
    head = "".join(f"<th>{html.escape(n)}</th>" for n in scores)
    body: List[str] = []
    for i, token in enumerate(tokens):
        cells = "".join(
            f"<td>{scores[n][i]:.5f}</td>" if players[i] else "<td>-</td>" for n in scores
        )
        body.append(f"<tr><td>{i}</td><td>{html.escape(token)}</td>{cells}</tr>")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; }}
.tok {{ padding: 2px 3px; border-radius: 3px; line-height: 2em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(summary)}</p>
<h2>Highlighted tokens</h2>
<p>Green: pushes towards the explained class; red: against; each method scaled to its own maximum.</p>
<table>{''.join(rows)}</table>
<h2>Scores</h2>
<table><tr><th>#</th><th>token</th>{head}</tr>{''.join(body)}</table>
</body></html>
"""


def scores_as_lists(scores: Mapping[str, Sequence[float]]) -> Dict[str, List[float]]:
    """Plain float lists (for JSON output)."""
    return {name: [float(v) for v in values] for name, values in scores.items()}
