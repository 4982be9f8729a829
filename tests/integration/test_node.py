"""`node start|stop|status`: a real Anvil in the background, its state kept across restarts."""

from __future__ import annotations

import time

from cli_harness import free_port, make_cli


def test_start_status_stop_restart_keeps_state(tmp_path):
    ao = make_cli(tmp_path, f"http://127.0.0.1:{free_port()}")
    assert ao.json("node", "status")["running"] is False
    started = ao.json("node", "start")
    try:
        assert started["running"] is True
        ao("wallet", "fund", "dev:5", "--eth", "1", "--from", "dev:0")
        block = ao.json("node", "status")["block"]
        assert block >= 1
        again = ao("node", "start", ok=False)
        assert again.exit_code == 1 and "already running" in again.output
    finally:
        assert ao.json("node", "stop") == {"stopped": True}
    assert ao.json("node", "status")["running"] is False
    ao("node", "start")
    try:
        assert ao.json("node", "status")["block"] == block  # state came back from state.json
    finally:
        ao("node", "stop")
    ao("node", "start", "--fresh")
    try:
        assert ao.json("node", "status")["block"] == 0
    finally:
        ao("node", "stop")
    assert ao.json("node", "stop") == {"stopped": False}


def test_block_time_mines_blocks_without_transactions(tmp_path):
    ao = make_cli(tmp_path, f"http://127.0.0.1:{free_port()}")
    ao("node", "start", "--fresh", "--block-time", "0.2")
    try:
        first = ao.json("node", "status")["block"]
        deadline = time.monotonic() + 20
        while ao.json("node", "status")["block"] < first + 2:
            assert time.monotonic() < deadline, "no blocks were mined"
            time.sleep(0.2)
    finally:
        ao("node", "stop")
    bad = ao("node", "start", "--block-time", "0", ok=False)
    assert bad.exit_code != 0 and "block-time" in bad.output
