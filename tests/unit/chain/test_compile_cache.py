"""Compiled contracts are kept on disk, keyed by the sources and compiler versions (a CLI process skips vyper)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from attribution_oracle.chain import compile as compiling


def _copy_contracts(tmp_path: Path) -> Path:
    root = tmp_path / "contracts"
    shutil.copytree(compiling.contracts_dir(), root)
    return root


def test_the_key_changes_with_any_contract_file(tmp_path: Path) -> None:
    root = _copy_contracts(tmp_path)
    before = compiling._sources_key(root)
    assert compiling._sources_key(root) == before
    interface = next(root.rglob("*.vyi"))
    interface.write_text(interface.read_text() + "\n# a comment\n")
    assert compiling._sources_key(root) != before


def test_a_second_process_reads_the_compiled_contract_from_disk(tmp_path: Path, monkeypatch) -> None:
    root = _copy_contracts(tmp_path)
    monkeypatch.setattr(compiling, "contracts_dir", lambda: root)
    compiling.compile_contract.cache_clear()
    try:
        first = compiling.compile_contract("OpenToken")
        cached = list((tmp_path / ".build" / "compiled").glob("OpenToken-*.json"))
        assert len(cached) == 1 and first.bytecode.startswith("0x") and first.abi
        compiling.compile_contract.cache_clear()  # a new process: only the disk cache is left

        def refuse(*args):
            raise AssertionError("compiled again although the sources did not change")

        monkeypatch.setattr(compiling, "_compile", refuse)
        assert compiling.compile_contract("OpenToken") == first
        (root / "OpenToken.vy").write_text((root / "OpenToken.vy").read_text() + "\n")
        compiling.compile_contract.cache_clear()
        with pytest.raises(AssertionError, match="compiled again"):
            compiling.compile_contract("OpenToken")  # a changed source is compiled, not read
    finally:
        compiling.compile_contract.cache_clear()
