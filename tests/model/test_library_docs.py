"""docs/library.md lists the package's layout: every module of ``model/`` is in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_of_the_library_is_in_the_layout_of_docs_library() -> None:
    text = (ROOT / "docs" / "library.md").read_text()
    layout = text.split("```")[1]  # the first code block: model/ and a line per module
    listed = set(re.findall(r"\b(\w+)\.py\b", layout))
    modules = {path.stem for path in (ROOT / "model").glob("*.py")} - {"__init__"}
    assert modules <= listed, f"not in docs/library.md's layout: {sorted(modules - listed)}"
