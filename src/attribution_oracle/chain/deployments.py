"""Deployment files: ``deployments/<chain_id>.json`` with every contract's address and ABI."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from attribution_oracle.chain.chain_errors import DeploymentNotFoundError
from attribution_oracle.files import atomic_write

FORMAT_VERSION = 1


@dataclass
class ContractRecord:
    """One deployed contract."""

    address: str
    abi: list[dict]


@dataclass
class Deployment:
    """Everything the package needs to talk to one deployment of the contracts."""

    chain_id: int
    block_number: int
    block_hash: str
    deployer: str
    contracts: dict[str, ContractRecord]
    config: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def key(self) -> str:
        """A string that changes whenever the chain or the deployment changes (used to reset caches)."""
        registry = self.contracts["DatanetRegistry"].address.lower()
        return f"{self.chain_id}:{registry}:{self.block_hash}"

    def to_json(self) -> str:
        """Serialise as stable, indented JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        """Parse a deployment file's text."""
        data = json.loads(text)
        data["contracts"] = {name: ContractRecord(**rec) for name, rec in data["contracts"].items()}
        return cls(**data)

    def save(self, directory: Path) -> Path:
        """Write ``<directory>/<chain_id>.json`` atomically and return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.chain_id}.json"
        text = self.to_json()
        atomic_write(path, lambda handle: handle.write(text.encode()))
        return path


def load_deployment(chain_id: int, directories: list[Path]) -> Deployment:
    """Load the first ``<chain_id>.json`` found in ``directories``."""
    for directory in directories:
        path = Path(directory) / f"{chain_id}.json"
        if path.is_file():
            try:
                return Deployment.from_json(path.read_text())
            except (ValueError, KeyError, TypeError) as exc:
                raise DeploymentNotFoundError(f"deployment file {path} is malformed: {exc}") from exc
    searched = ", ".join(str(d) for d in directories)
    raise DeploymentNotFoundError(
        f"no deployment for chain {chain_id} (looked in {searched}); run `attribution-oracle deploy` first"
    )
