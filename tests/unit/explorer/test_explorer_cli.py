"""`attribution-oracle explorer`: bad input gives one `error:` line and exit code 1."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from attribution_oracle.cli.main import cli


def _dead_rpc() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_missing_home_is_one_error_line(tmp_path):
    result = CliRunner().invoke(cli, ["--rpc", _dead_rpc(), "explorer", "--home", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and "Traceback" not in result.output


def test_dead_rpc_is_one_error_line(tmp_path):
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "--rpc", _dead_rpc(), "explorer", "--port", "1"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1


def test_help_describes_the_command():
    result = CliRunner().invoke(cli, ["explorer", "--help"])
    assert result.exit_code == 0 and "--served" in result.output and "Read-only" in result.output
