"""Run Anvil (from npm's ``@foundry-rs/anvil``) in the background with a pidfile, a log and kept state."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from attribution_oracle.chain.chain_errors import ChainError
from attribution_oracle.chain.web3_client import ChainClient

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def find_anvil() -> str:
    """Locate the anvil binary: on PATH, else in the project's ``node_modules/.bin``."""
    if found := shutil.which("anvil"):
        return found
    local = Path(__file__).resolve().parents[3] / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    raise ChainError("anvil not found: run `npm ci` in the project (or `make setup`) to install it")


@dataclass
class NodeStatus:
    """What `node status` reports."""

    running: bool
    pid: int | None
    rpc_url: str
    block_number: int | None
    state_file: Path


class LocalNode:
    """An Anvil process owned by a state directory (pidfile, log, state dump)."""

    def __init__(self, state_dir: Path, port: int = 8545, host: str = "127.0.0.1") -> None:
        self.dir = Path(state_dir)
        self.port = port
        self.host = host
        self.pidfile = self.dir / "anvil.pid"
        self.logfile = self.dir / "anvil.log"
        self.state_file = self.dir / "state.json"

    @property
    def rpc_url(self) -> str:
        """The node's HTTP RPC address."""
        return f"http://{self.host}:{self.port}"

    def pid(self) -> int | None:
        """The pid of a live node started from this directory, if any."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def start(self, fresh: bool = False, block_time: float | None = None) -> NodeStatus:
        """Start Anvil in the background (keeping state in ``state.json``) and wait until it answers."""
        if self.pid() is not None:
            raise ChainError(f"a node is already running (pid {self.pid()}); `node stop` first")
        self.dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            self.state_file.unlink(missing_ok=True)
        if self._port_answers():
            raise ChainError(f"something already listens on {self.rpc_url}; choose another --port")
        cmd = [find_anvil(), "--host", self.host, "--port", str(self.port), "--chain-id", "31337"]
        cmd += ["--state", str(self.state_file)]
        if block_time:
            cmd += ["--block-time", str(block_time)]
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        tmp = self.pidfile.with_suffix(".tmp")
        tmp.write_text(f"{proc.pid} {self.port}\n")
        os.replace(tmp, self.pidfile)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pidfile.unlink(missing_ok=True)
                tail = self.logfile.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise ChainError(f"anvil exited at start (code {proc.returncode}): {tail[0]}")
            if self._port_answers():
                return self.status()
            time.sleep(0.1)
        self.stop()
        raise ChainError(f"anvil did not answer on {self.rpc_url} within {START_TIMEOUT_S:.0f}s")

    def stop(self) -> bool:
        """Stop the node (SIGTERM, so Anvil writes its state; SIGKILL after a timeout). False if none ran."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and self.pid() is not None:
            self._reap(pid)
            time.sleep(0.1)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return True

    def _reap(self, pid: int) -> None:
        """Collect the exit status when the node is our own child, so it does not linger as a zombie."""
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    def status(self) -> NodeStatus:
        """Whether the node runs and which block it is at."""
        pid = self.pid()
        block = None
        if pid is not None:
            try:
                block = ChainClient(self.rpc_url, timeout_s=2).w3.eth.block_number
            except Exception:  # noqa: BLE001 - any failure means "not answering"
                block = None
        return NodeStatus(pid is not None, pid, self.rpc_url, block, self.state_file)

    def _port_answers(self) -> bool:
        try:
            return ChainClient(self.rpc_url, timeout_s=1).w3.is_connected()
        except Exception:  # noqa: BLE001
            return False
