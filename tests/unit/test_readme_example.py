"""The README's attribution example runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_attribution_example_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"## Attribution API.*?```python\n(.*?)```", readme, re.S).group(1)
    block = block.replace("/tmp/readme-index", str(tmp_path / "index"))
    exec(compile(block, "README.md", "exec"), {})
