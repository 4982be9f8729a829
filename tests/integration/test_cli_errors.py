"""Every kind of bad input gets one readable line, a non-zero exit, and leaves chain and catalog as they were."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_harness import free_port, make_cli

CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"


def assert_user_error(result, fragment: str) -> None:
    """Exit code 1 and exactly one line, 'error: ...', containing ``fragment``."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def world(chain_cli):
    """A Datanet with one of alice's contributions; 'poor' has ETH but no OPEN, 'broke' has OPEN but no ETH."""
    ao = chain_cli
    for who in ("owner", "alice", "bob", "poor"):
        ao("wallet", "new", who)
        ao("wallet", "fund", who, "--eth", "1", "--from", "dev:0")
    ao("wallet", "new", "broke")
    for who in ("owner", "alice", "bob", "broke"):
        ao("token", "mint", who, "100", "--from", "dev:0")
    ao("datanet", "create", "Bees", "--min-stake", "5", "--from", "owner")
    ao("datanet", "contribute", "1", str(CORPUS / "alice" / "01-hive-inspection.txt"), "--from", "alice")
    return ao


def _contribution_count(ao) -> int:
    return ao.json("datanet", "show", "1")["datanet"]["contribution_count"]


def test_missing_file(world):
    assert_user_error(
        world("datanet", "contribute", "1", "/no/such/file.txt", "--from", "alice", ok=False), "no such file"
    )


def test_unknown_datanet(world):
    f = str(CORPUS / "bob" / "01-nectar-flow.txt")
    assert_user_error(world("datanet", "contribute", "99", f, "--from", "bob", ok=False), "unknown datanet")
    assert_user_error(world("datanet", "show", "99", ok=False), "unknown datanet 99")
    assert_user_error(world("datanet", "publish", "99", "--from", "owner", ok=False), "unknown datanet")


def test_unknown_model(world):
    assert_user_error(world("model", "show", "42", ok=False), "unknown model 42")


def test_unknown_datanet_version_for_a_model(world):
    result = world(
        "model", "register", "--base-hash", "11" * 32, "--adapter-hash", "22" * 32, "--datanet", "1@3",
        "--price", "1", "--from", "bob", ok=False,
    )  # fmt: skip
    assert_user_error(result, "no published version 3")


def test_unknown_wallet(world):
    assert_user_error(world("token", "transfer", "alice", "1", "--from", "nobody", ok=False), "unknown wallet 'nobody'")


def test_account_without_the_role(world):
    assert_user_error(world("token", "mint", "alice", "1", "--from", "alice", ok=False), "caller is not a minter")
    assert_user_error(world("datanet", "approve", "1", "--from", "bob", ok=False), "caller is not a curator")
    assert_user_error(world("datanet", "publish", "1", "--from", "bob", ok=False), "not the datanet owner")
    assert world.json("datanet", "show", "1")["contributions"][0]["status"] == "pending"


def test_wallet_without_open(world):
    before = _contribution_count(world)
    folder = str(CORPUS / "bob")
    assert_user_error(world("datanet", "contribute", "1", folder, "--from", "poor", ok=False), "OPEN is needed")
    assert _contribution_count(world) == before


def test_wallet_without_eth(world):
    result = world("datanet", "create", "Broke's", "--from", "broke", ok=False)
    assert_user_error(result, "ETH")
    assert len(world.json("datanet", "list")) == 1


def test_wrong_password(world):
    result = world("token", "transfer", "bob", "1", "--from", "alice", ok=False, env={"ATTRIBUTION_PASSWORD": "nope"})
    assert_user_error(result, "wrong password for wallet 'alice'")


def test_dead_rpc(world):
    dead = f"http://127.0.0.1:{free_port()}"
    assert_user_error(world("--rpc", dead, "datanet", "list", ok=False), "cannot reach the chain")
    assert_user_error(world("--rpc", dead, "token", "mint", "alice", "1", "--from", "dev:0", ok=False), "cannot reach")


def test_no_deployment_for_this_chain(world, tmp_path):
    other = make_cli(tmp_path, world.env["ATTRIBUTION_RPC"])
    assert_user_error(other("datanet", "list", ok=False), "no deployment for chain 31337")


def test_malformed_amounts_and_ids(world):
    assert_user_error(world("token", "mint", "alice", "lots", "--from", "dev:0", ok=False), "is not a number")
    assert_user_error(world("token", "mint", "--from", "dev:0", "--", "alice", "-1", ok=False), "non-negative")
    assert_user_error(world("token", "mint", "0x1234", "1", "--from", "dev:0", ok=False), "not a valid address")


def test_reverted_transaction_reason_is_decoded(world):
    world("datanet", "reject", "1", "--from", "owner")
    assert_user_error(world("datanet", "approve", "1", "--from", "owner", ok=False), "contribution is not pending")


def test_duplicate_in_a_batch_refuses_the_whole_batch(world):
    """A folder whose last file duplicates another contributor's content: nothing is sent at all."""
    world("datanet", "contribute", "1", str(CORPUS / "carol" / "01-american-foulbrood.txt"), "--from", "alice")
    before = _contribution_count(world)
    result = world("datanet", "contribute", "1", str(CORPUS / "carol"), "--from", "bob", ok=False)
    assert_user_error(result, "duplicates contribution")
    assert _contribution_count(world) == before


def test_transfer_more_than_the_balance(world):
    assert_user_error(world("token", "transfer", "bob", "1000", "--from", "alice", ok=False), "less than 1000")


def test_console_script_prints_one_line_and_no_traceback(world):
    proc = world.process("model", "show", "7")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: unknown model 7"
    assert "Traceback" not in proc.stdout + proc.stderr
    proc = world.process("--help")
    assert proc.returncode == 0 and "datanet" in proc.stdout


def test_settlement_commands_with_bad_input(world, tmp_path):
    assert_user_error(world("market", "pay", "99", "--prompt", "hi", "--from", "alice", ok=False), "unknown model")
    assert_user_error(world("market", "serve", "999", "--from", "dev:0", ok=False), "unknown request 999")
    assert_user_error(
        world("report", "sign", "sha256://" + "ab" * 32, "--from", "dev:0", ok=False), "not in the content store"
    )
    assert_user_error(world("report", "verify", "ipfs://nope", ok=False), "not a content-store URI")
    bad = tmp_path / "scores.json"
    bad.write_text("[1, 2")
    assert_user_error(world("report", "build", "--epoch", "1", "--scores", str(bad), ok=False), "expected JSON")
    assert_user_error(world("rewards", "claim", "alice", "--from", "alice", ok=False), "no rewards")
