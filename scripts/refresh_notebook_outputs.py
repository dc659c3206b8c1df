"""Re-run notebooks and store only the outputs that ``pytest --nbval-lax`` checks.

Cells marked ``# NBVAL_CHECK_OUTPUT`` keep their printed text and execution count;
every other output, execution count and widget state is stripped, so the stored
notebooks stay small.

    python scripts/refresh_notebook_outputs.py notebooks/*.ipynb
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MARK = "# NBVAL_CHECK_OUTPUT"


def refresh(path: Path, timeout: int = 900) -> None:
    book = nbformat.read(path, as_version=4)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    for path in parser.parse_args().notebooks:
        refresh(path)
        print(f"refreshed {path}")


if __name__ == "__main__":
    main()
