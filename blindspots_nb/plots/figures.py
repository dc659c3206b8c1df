"""What every figure shares: its title with the caption that says what produced it
(plotly and matplotlib), and writing it to a file of the right format."""

from __future__ import annotations

import textwrap
from pathlib import Path


def plotly_title(title: str, caption: str, width: int = 120) -> dict:
    """A plotly layout title: ``title`` over the caption in small lines of ``width`` characters."""
    lines = textwrap.wrap(caption, width)
    text = title + "".join(f"<br><sup>{line}</sup>" for line in lines)
    return {"text": text, "x": 0.01, "xanchor": "left", "font": {"size": 15}}


def matplotlib_caption(fig, title: str, caption: str) -> None:
    """``title`` over a matplotlib figure, the caption in small print at its foot."""
    fig.suptitle(title)
    if caption:
        fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7, color="0.3", wrap=True)


def save_figure(fig, path, include_plotlyjs=True) -> Path:
    """Write a figure: plotly as .html (self-contained by default, so it opens
    offline), matplotlib as .png, a matplotlib animation as .gif or .mp4."""
    from matplotlib.animation import Animation, writers
    from matplotlib.figure import Figure
    from plotly.basedatatypes import BaseFigure

    path = Path(path)
    kinds = {BaseFigure: (".html",), Figure: (".png",), Animation: (".gif", ".mp4")}
    allowed = next((suffixes for kind, suffixes in kinds.items() if isinstance(fig, kind)), None)
    if allowed is None:
        raise TypeError(f"cannot save a {type(fig).__name__}: expected a plotly figure, a matplotlib "
                        "figure or a matplotlib animation")
    if path.suffix.lower() not in allowed:
        raise ValueError(f"a {type(fig).__name__} is written as {' or '.join(allowed)}, not {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4" and not writers.is_available("ffmpeg"):
        raise RuntimeError("writing .mp4 needs ffmpeg on the PATH (e.g. apt-get install ffmpeg); "
                           "write a .gif instead")
    if isinstance(fig, BaseFigure):
        fig.write_html(path, include_plotlyjs=include_plotlyjs)
    elif isinstance(fig, Figure):
        fig.savefig(path, dpi=120, bbox_inches="tight")
    else:
        fig.save(path, writer="pillow" if path.suffix.lower() == ".gif" else "ffmpeg")
    return path
