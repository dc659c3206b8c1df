"""What every figure shares: its title with the caption that says what produced it
(plotly and matplotlib), and writing it to a file of the right format: HTML or, for
papers, PNG, SVG or PDF."""

from __future__ import annotations

import html
import os
import shutil
import textwrap
from pathlib import Path

STATIC_FORMATS = (".png", ".svg", ".pdf")
PLOTLY_PICTURE_WIDTH = 1000  # pixels of a plotly picture whose layout sets no width (plotly's 700 clips 3-D axis titles)
_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_INSTALL = ("pip install 'kaleido>=1' (or the package's [jupyter] extra) and a Chromium: apt-get install chromium, "
            "or set BROWSER_PATH to a Chrome or Chromium executable; or write the figure as .html")


CAPTION_WIDTH = 120  # characters of a caption's line under a plotly title
# Pixels kept at the figure's top for a one-line title, per caption line in 11-pixel print, and between the
# caption and the plot (for :func:`caption_above_plot`).
TITLE_HEIGHT, CAPTION_LINE, CAPTION_GAP = 40, 15, 8


def plotly_title(title: str, caption: str, width: int = CAPTION_WIDTH) -> dict:
    """A plotly layout title: ``title`` over the caption in small lines of ``width`` characters.
    Both are plain text (names of files, classes and models among them): escaped, since plotly
    reads a title as markup."""
    lines = textwrap.wrap(caption, width)
    text = html.escape(title, quote=False) + "".join(f"<br><sup>{html.escape(line, quote=False)}</sup>"
                                                      for line in lines)
    return {"text": text, "x": 0.01, "xanchor": "left", "font": {"size": 15}}


def caption_above_plot(figure, caption: str, width: int = CAPTION_WIDTH) -> None:
    """``caption`` (plain text, escaped) in small lines on the plot's top edge, growing upwards,
    under the figure's one-line title, in a top margin made tall enough for both: however many
    lines it takes, it never reaches into the plot, where a contour's corner names are. (A
    caption in the title, as :func:`plotly_title` puts it, is anchored by its first line and
    runs down into the plot when it is long.)"""
    lines = textwrap.wrap(caption, width)
    figure.add_annotation(text="<br>".join(html.escape(line, quote=False) for line in lines), showarrow=False,
                          xref="paper", yref="paper", x=0, y=1, xanchor="left", yanchor="bottom", align="left",
                          yshift=CAPTION_GAP, font={"size": 11, "color": "#444"}, name="caption")
    figure.update_layout(title={"yref": "container", "y": 1, "yanchor": "top", "pad": {"t": 12}},
                         margin={"t": TITLE_HEIGHT + CAPTION_GAP + len(lines) * CAPTION_LINE})


def matplotlib_caption(fig, title: str, caption: str) -> None:
    """``title`` over a matplotlib figure, the caption in small print at its foot."""
    fig.suptitle(title)
    if caption:
        fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7, color="0.3", wrap=True)


class RendererMissingError(RuntimeError):
    """A plotly figure cannot be drawn as PNG, SVG or PDF here: kaleido or a browser is missing."""


def plotly_renderer() -> str:
    """The browser that draws plotly figures as pictures, checked before drawing: plotly's
    kaleido (>= 1) drives a Chrome or Chromium. When ``BROWSER_PATH`` is unset it is pointed
    at the system's browser on the PATH (Debian's ``/usr/bin/chromium``), so kaleido uses
    that, offline, instead of asking to download Chrome. Raises :class:`RendererMissingError`
    saying what to install."""
    try:
        import kaleido  # noqa: F401  (plotly imports it itself; this only checks it is there)
        from choreographer.browsers.chromium import Chromium
    except ImportError:
        raise RendererMissingError(f"drawing a plotly figure as {'/'.join(STATIC_FORMATS)} needs kaleido: {_INSTALL}") \
            from None
    if not os.environ.get("BROWSER_PATH"):
        system = next(filter(None, map(shutil.which, _CHROMIUM_NAMES)), None)
        if system:
            os.environ["BROWSER_PATH"] = system
    browser = Chromium.find_browser(skip_local=False)
    if not browser or not os.access(browser, os.X_OK):
        where = f"BROWSER_PATH={os.environ['BROWSER_PATH']} is not an executable" if os.environ.get("BROWSER_PATH") \
            else "no Chrome or Chromium found"
        raise RendererMissingError(f"drawing a plotly figure as {'/'.join(STATIC_FORMATS)} needs a browser "
                                   f"({where}): {_INSTALL}")
    return browser


def save_figure(fig, path, include_plotlyjs=True, dpi: int = 120) -> Path:
    """Write a figure, the format from ``path``'s suffix: plotly as .html (self-contained
    by default, so it opens offline) or as a picture (.png, .svg, .pdf, ``PLOTLY_PICTURE_WIDTH``
    pixels wide unless its layout sets a width; needs kaleido and a Chromium, see
    :func:`plotly_renderer`); matplotlib as .png (``dpi`` dots per inch; 300
    for print), .svg or .pdf; a matplotlib animation as .gif or .mp4."""
    from matplotlib.animation import Animation, writers
    from matplotlib.figure import Figure
    from plotly.basedatatypes import BaseFigure

    path = Path(path)
    suffix = path.suffix.lower()
    kinds = {BaseFigure: (".html", *STATIC_FORMATS), Figure: STATIC_FORMATS, Animation: (".gif", ".mp4")}
    allowed = next((suffixes for kind, suffixes in kinds.items() if isinstance(fig, kind)), None)
    if allowed is None:
        raise TypeError(f"cannot save a {type(fig).__name__}: expected a plotly figure, a matplotlib "
                        "figure or a matplotlib animation")
    if suffix not in allowed:
        raise ValueError(f"a {type(fig).__name__} is written as {', '.join(allowed[:-1])} or {allowed[-1]}, "
                         f"not {path.name}")
    if suffix == ".mp4" and not writers.is_available("ffmpeg"):
        raise RuntimeError("writing .mp4 needs ffmpeg on the PATH (e.g. apt-get install ffmpeg); "
                           "write a .gif instead")
    if isinstance(fig, BaseFigure) and suffix != ".html":
        plotly_renderer()
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(fig, BaseFigure):
        if suffix == ".html":
            fig.write_html(path, include_plotlyjs=include_plotlyjs)
        else:
            fig.write_image(path, width=fig.layout.width or PLOTLY_PICTURE_WIDTH)
    elif isinstance(fig, Figure):
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    else:
        fig.save(path, writer="pillow" if suffix == ".gif" else "ffmpeg")
    return path
