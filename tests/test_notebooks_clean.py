"""Chapters are committed without outputs or widget state; widget cells are tagged for nbval."""
import json
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_stripped(path):
    notebook = json.loads(path.read_text())
    assert "widgets" not in notebook.get("metadata", {}), "widget state in metadata: strip it"
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"outputs in {path.name}: strip them"
            assert cell.get("execution_count") is None, f"execution count in {path.name}"
    ids = [cell.get("id") for cell in notebook["cells"]]  # nbformat 4.5 wants one; nbval warns without
    assert None not in ids and len(set(ids)) == len(ids), f"{path.name}: every cell needs its own id"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_widget_cells_ignore_output_and_chapters_have_badge_goals_summary(path):
    notebook = json.loads(path.read_text())
    text = "\n".join("".join(c["source"]) for c in notebook["cells"])
    assert "colab-badge.svg" in text and "assert" in text and "Summary" in text
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "explorer(" in source:
            assert "nbval-ignore-output" in cell.get("metadata", {}).get("tags", []), source[:80]
