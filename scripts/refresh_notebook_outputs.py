"""Re-run notebooks and store only the outputs that ``pytest --nbval-lax`` checks.

Cells marked ``# NBVAL_CHECK_OUTPUT`` keep their printed text and execution count;
every other output, execution count and widget state is stripped, so the stored
notebooks stay small. Where a checked cell's text changed, the change is printed, to be
read before committing: nbval takes the stored text as the truth.

    python scripts/refresh_notebook_outputs.py notebooks/*.ipynb
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MARK = "# NBVAL_CHECK_OUTPUT"


def checked_text(book) -> dict[int, str]:
    """The printed text of each checked cell, by the cell's index."""
    return {index: "".join(output.get("text", "") for output in cell.outputs)
            for index, cell in enumerate(book.cells)
            if cell.cell_type == "code" and cell.source.lstrip().startswith(MARK)}


def refresh(path: Path, timeout: int = 900) -> list[str]:
    """Re-run ``path`` and store its checked outputs; returns the lines of a diff of the
    checked text that changed (empty when none did)."""
    book = nbformat.read(path, as_version=4)
    before = checked_text(book)
    NotebookClient(book, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        checked = cell.source.lstrip().startswith(MARK)
        cell.outputs = [output for output in cell.outputs
                        if checked and output.output_type == "stream" and output.name == "stdout"]
        if not checked:  # nbval compares only cells that have run, i.e. have a count
            cell.execution_count = None
        for key in ("execution", "papermill"):
            cell.metadata.pop(key, None)
    book.metadata.pop("widgets", None)
    nbformat.write(book, path)
    after = checked_text(book)
    return [line for index in after if before.get(index) != after[index]
            for line in difflib.unified_diff(before.get(index, "").splitlines(), after[index].splitlines(),
                                             f"cell {index} stored", f"cell {index} now", lineterm="")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    for path in parser.parse_args().notebooks:
        changes = refresh(path)
        print(f"refreshed {path}: " + ("checked outputs unchanged" if not changes else "checked outputs changed"))
        for line in changes:
            print(f"  {line}")


if __name__ == "__main__":
    main()
