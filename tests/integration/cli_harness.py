"""Helpers for integration tests: free ports and a CLI runner bound to one home and one chain.

(Imported as ``cli_harness``; ``conftest`` is not importable by name because several test folders have one.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from attribution_oracle.cli.main import cli

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cli:
    """Runs the real CLI (in-process via click, or as the console script) against one home and chain."""

    home: Path
    env: dict[str, str]

    def __call__(self, *args: str, ok: bool = True, env: dict[str, str] | None = None) -> Result:
        result = CliRunner().invoke(cli, list(args), env={**self.env, **(env or {})}, catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(f"`{' '.join(args)}` exited {result.exit_code}:\n{result.output}")
        return result

    def json(self, *args: str) -> object:
        """Run with --json and parse the output."""
        return json.loads(self("--json", *args).stdout)

    def process(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run the installed console script as a separate process."""
        exe = Path(sys.executable).with_name("attribution-oracle")
        return subprocess.run(
            [str(exe), *args],
            env={**os.environ, **self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )


def make_cli(home: Path, rpc: str) -> Cli:
    """A CLI bound to ``home`` and ``rpc``, with wallets in ``home/accounts``."""
    return Cli(
        home,
        {
            "ATTRIBUTION_HOME": str(home),
            "ATTRIBUTION_ACCOUNTS_DIR": str(home / "accounts"),
            "ATTRIBUTION_PASSWORD": PASSWORD,
            "ATTRIBUTION_RPC": rpc,
        },
    )
