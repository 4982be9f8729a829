"""Compile the project's Vyper contracts with the vyper package (no network, no ape needed)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from attribution_oracle.chain.errors import ChainError


@dataclass(frozen=True)
class Artifact:
    """ABI and creation bytecode of one contract."""

    name: str
    abi: list[dict]
    bytecode: str


def contracts_dir() -> Path:
    """Locate ``contracts/``: beside the source tree (editable install) or in the current directory."""
    for candidate in (Path(__file__).resolve().parents[3] / "contracts", Path.cwd() / "contracts"):
        if (candidate / "OpenToken.vy").is_file():
            return candidate
    raise ChainError("cannot find the contracts/ folder: run from the project checkout")


@cache
def compile_contract(name: str) -> Artifact:
    """Compile ``contracts/<name>.vy`` and return its ABI and bytecode (cached per process)."""
    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    root = contracts_dir()
    path = root / f"{name}.vy"
    if not path.is_file():
        raise ChainError(f"no contract named {name} in {root}")
    bundle = FilesystemInputBundle([root, *[Path(p) for p in sys.path if p]])
    out = vyper.compile_code(
        path.read_text(), contract_path=path.name, input_bundle=bundle, output_formats=["abi", "bytecode"]
    )
    return Artifact(name=name, abi=out["abi"], bytecode=out["bytecode"])
