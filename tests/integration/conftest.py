"""Integration fixtures: a real Anvil started by the CLI on a free port, and a CLI runner bound to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cli_harness import Cli, free_port, make_cli


@pytest.fixture(scope="module")
def chain_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A fresh Anvil (started with `node start`) with the contracts deployed by `deploy`; stopped afterwards."""
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    runner = make_cli(home, f"http://127.0.0.1:{port}")
    runner("node", "start", "--fresh")
    try:
        runner("deploy", "--from", "dev:0")
        yield runner
    finally:
        runner("node", "stop", ok=False)
