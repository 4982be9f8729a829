"""Compile the project's Vyper contracts with the vyper package (no network, no ape needed).

Compiled ABIs and bytecode are kept in ``.build/compiled/`` beside ``contracts/``, keyed by a hash of every
file under ``contracts/`` and the vyper and snekmate versions, so a CLI process (``deploy``, every test
module's deployment) compiles only after a contract changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from attribution_oracle.chain.chain_errors import ChainError
from attribution_oracle.files import atomic_write


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


def _sources_key(root: Path) -> str:
    """sha256 of the compiler versions and every file under ``root`` (names and bytes, in sorted order)."""
    digest = hashlib.sha256()
    for package in ("vyper", "snekmate"):
        try:
            digest.update(f"{package}=={metadata.version(package)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{package} missing\n".encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        digest.update(f"{path.relative_to(root).as_posix()} {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


@cache
def compile_contract(name: str) -> Artifact:
    """Compile ``contracts/<name>.vy`` and return its ABI and bytecode (cached per process and on disk)."""
    root = contracts_dir()
    path = root / f"{name}.vy"
    if not path.is_file():
        raise ChainError(f"no contract named {name} in {root}")
    cached = root.parent / ".build" / "compiled" / f"{name}-{_sources_key(root)[:32]}.json"
    try:
        stored = json.loads(cached.read_text())
        return Artifact(name=name, abi=stored["abi"], bytecode=stored["bytecode"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    artifact = _compile(root, path, name)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"abi": artifact.abi, "bytecode": artifact.bytecode}).encode()
        atomic_write(cached, lambda handle: handle.write(text))
    except OSError:
        pass  # a read-only checkout compiles every time
    return artifact


def _compile(root: Path, path: Path, name: str) -> Artifact:
    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    bundle = FilesystemInputBundle([root, *[Path(p) for p in sys.path if p]])
    out = vyper.compile_code(
        path.read_text(), contract_path=path.name, input_bundle=bundle, output_formats=["abi", "bytecode"]
    )
    return Artifact(name=name, abi=out["abi"], bytecode=out["bytecode"])
