"""Text from data (names of files, classes and models, settings, error text) put into the HTML
and Markdown that JupyterLab and Voila render: escaped, so that a name is shown, never run
(JupyterLab renders the Markdown of a cell's output with its HTML live)."""

from __future__ import annotations

import html


def markdown_text(value) -> str:
    """``value`` as Markdown that shows it as it is: '&', '<' and '>' as HTML entities, and '|'
    (which would split a table's cell) escaped."""
    return html.escape(str(value), quote=False).replace("|", "\\|")
