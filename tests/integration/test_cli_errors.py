"""Every kind of bad input gets one readable line, a non-zero exit, and leaves chain and catalog as they were."""

from __future__ import annotations

import json
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


# ---------------------------------------------------------------- the newcomer's findings (issue 17)

UINT256_TOO_BIG = str(2**256)
BAD_NUMBERS = ["nan", "NaN", "inf", "Infinity", "-Infinity", "-1", UINT256_TOO_BIG, "1e80", "twelve", "0x1g"]


def assert_one_error_line(result, code: int | None = None) -> str:
    """One line, 'error: ...', a non-zero exit (``code`` if given) and no traceback; returns the line."""
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and (code is None or result.exit_code == code), result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def _status(world, contribution_id: int) -> str:
    shown = world.json("datanet", "show", "1")["contributions"]
    return {c["id"]: c["status"] for c in shown}[contribution_id]


def test_batch_approve_checks_every_id_before_sending(world):
    """`approve 13 1 14` with 1 not approvable approved 13 and left 14 pending; now nothing is sent."""
    ids = world.json(
        "datanet", "contribute", "1", str(CORPUS / "alice" / "02-smoker-use.txt"),
        str(CORPUS / "alice" / "03-queen-cells.txt"), "--from", "alice",
    )["contributionIds"]  # fmt: skip
    first, last = ids
    line = assert_one_error_line(world("datanet", "approve", str(first), "999", str(last), "--from", "owner", ok=False))
    assert "contribution 999" in line and "nothing was sent" in line
    assert _status(world, first) == _status(world, last) == "pending"
    line = assert_one_error_line(world("datanet", "reject", str(first), str(first), "--from", "owner", ok=False))
    assert "twice" in line
    assert_one_error_line(world("datanet", "reject", str(last), "999", "--malicious", "--from", "owner", ok=False))
    assert _status(world, first) == _status(world, last) == "pending"
    world("datanet", "approve", str(first), str(last), "--from", "owner")
    assert _status(world, first) == _status(world, last) == "approved"


@pytest.mark.parametrize("amount", ["NaN", "nan", "Infinity", "-Infinity", "inf", "1e80", "sNaN"])
def test_non_finite_and_huge_amounts_are_one_error_line(world, amount):
    line = assert_one_error_line(world("token", "mint", "--from", "dev:0", "--", "alice", amount, ok=False), 1)
    assert amount in line


def test_rpc_that_is_not_a_url_is_one_error_line(world):
    line = assert_one_error_line(world("datanet", "list", ok=False, env={"ATTRIBUTION_RPC": "notaurl"}), 1)
    assert "not an RPC URL" in line


def test_http_url_that_is_not_a_chain_is_one_error_line(world):
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = b"<html>not a chain</html>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        line = assert_one_error_line(world("--rpc", url, "datanet", "list", ok=False), 1)
        assert "not an Ethereum JSON-RPC endpoint" in line
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("bad", ["-1", UINT256_TOO_BIG, "1.5", "x"])
def test_ids_above_uint256_or_negative_are_usage_errors(world, bad):
    for args in (("datanet", "show"), ("model", "show"), ("market", "show"), ("datanet", "approve", "--from", "owner")):
        line = assert_one_error_line(world(*args, "--", bad, ok=False), 2)
        assert "ids are whole numbers from 0 to 2**256 - 1" in line


def test_spec_ids_above_uint256_are_one_error_line(world):
    for spec in (f"1@{UINT256_TOO_BIG}", UINT256_TOO_BIG, "0", "-1"):
        result = world(
            "model", "register", "--base-hash", "11" * 32, "--adapter-hash", "22" * 32, "--datanet", spec,
            "--price", "1", "--from", "bob", ok=False,
        )  # fmt: skip
        assert "--datanet" in assert_one_error_line(result, 1)
    line = assert_one_error_line(world("serve", "--model-ids", UINT256_TOO_BIG, "--base", "tiny:0", ok=False), 1)
    assert "--model-ids" in line


def _numeric_params():
    """Every option and argument of every command whose value is a number: (command path, parameter)."""
    import click

    from attribution_oracle.cli.main import cli

    try:
        from attribution_oracle.cli.params import BoundedIntType, ChainIdType, FiniteFloatType

        checked: tuple[type, ...] = (BoundedIntType, ChainIdType, FiniteFloatType)
    except ImportError:  # a checkout before the typed parameters: walk click's own number types
        checked = ()

    def walk(group, path):
        for name, command in sorted(group.commands.items()):
            if isinstance(command, click.Group):
                yield from walk(command, [*path, name])
            else:
                yield [*path, name], command

    found = []
    for path, command in walk(cli, []):
        for param in command.params:
            if (
                isinstance(param.type, (*checked, click.types._NumberParamTypeBase, click.types.IntParamType))
                or param.name in AMOUNT_PARAMS
            ):
                found.append((path, param))
    return found


AMOUNT_PARAMS = {"amount", "min_stake", "stake", "max_fee", "price", "creation_fee"}
PLACEHOLDERS = {
    "sender": "dev:0", "wallet": "dev:0", "to": "dev:1", "account": "dev:1", "accounts": "dev:1", "alias": "x",
    "name": "x", "prompt": "hi", "prompts": "hi", "datanets": "1", "model_ids": "1", "served": "/nonexistent",
    "uri": "sha256://" + "ab" * 32, "paths": str(CORPUS / "alice" / "01-hive-inspection.txt"), "price": "1",
}  # fmt: skip


def _argv(path, command, target, value):
    """The command line with ``target`` set to ``value`` and every other required parameter to a valid value."""
    import click

    options, arguments = [], []
    for param in command.params:
        is_target = param is target
        if not is_target and not param.required:
            continue
        if is_target:
            text = value
        elif param.name in PLACEHOLDERS:
            text = PLACEHOLDERS[param.name]
        else:
            text = "1"
        if isinstance(param, click.Option):
            options += [param.opts[0], text]
        else:
            arguments.append(text)
    if command.name == "train" and target.name == "price":
        options.append("--register")
    return [*path, *options, "--", *arguments]


NUMERIC = _numeric_params()


def test_the_numeric_parameter_walk_covers_every_kind():
    names = {f"{' '.join(p)} {param.name}" for p, param in NUMERIC}
    for expected in ("model train steps", "model train lr", "datanet show datanet_id", "token mint amount",
                     "market pay max_fee", "oracle run poll_interval", "serve port", "deploy threshold"):  # fmt: skip
        assert expected in names, expected
    assert len(NUMERIC) >= 40


@pytest.mark.parametrize(("path", "param"), NUMERIC, ids=[f"{' '.join(p)}:{q.name}" for p, q in NUMERIC])
def test_every_numeric_option_and_id_refuses_bad_values(world, path, param):
    """Non-finite, negative, huge and non-numeric values: one `error:` line each, nothing done, no traceback."""
    before = _contribution_count(world)
    for bad in BAD_NUMBERS:
        result = world(*_argv(path, _command(path), param, bad), ok=False)
        line = assert_one_error_line(result)
        assert "Traceback" not in result.output
        assert result.exit_code in (1, 2), line
    assert _contribution_count(world) == before


def _command(path):
    from attribution_oracle.cli.main import cli

    command = cli
    for name in path:
        command = command.commands[name]
    return command


def test_no_numeric_parameter_uses_an_unchecked_click_type():
    """click's INT/FLOAT/FloatRange accept NaN, huge or negative values silently; every number uses cli.params."""
    import click

    unchecked = [
        f"{' '.join(path)} {param.name}"
        for path, param in NUMERIC
        if isinstance(param.type, click.types.IntParamType | click.types.FloatParamType)
        and not isinstance(param.type, click.IntRange)
    ]
    assert unchecked == []


def test_wallet_named_like_an_address_is_refused(world):
    """A wallet named '0xab..' would mean one account as a destination (the address) and another as a signer."""
    for alias in ("0x" + "ab" * 20, "0xdead", "0Xbeef"):
        line = assert_one_error_line(world("wallet", "new", alias, ok=False), 1)
        assert "reads as an address" in line
    assert not any(w["alias"].lower().startswith("0x") for w in world.json("wallet", "list"))


def test_empty_and_binary_files_are_refused_before_staking(world, tmp_path):
    (tmp_path / "folder").mkdir()
    empty, binary, text = tmp_path / "empty.txt", tmp_path / "folder" / "image.png", tmp_path / "folder" / "fine.txt"
    empty.write_bytes(b"")
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    text.write_text("Bees fan their wings to cool the hive on hot days.\n")
    before = _contribution_count(world)
    line = assert_one_error_line(world("datanet", "contribute", "1", str(text), str(empty), "--from", "bob", ok=False))
    assert "is empty" in line and "nothing was contributed" in line
    line = assert_one_error_line(
        world("datanet", "contribute", "1", str(tmp_path / "folder"), "--from", "bob", ok=False)
    )
    assert "is not text" in line
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Miel de bruy\xe8re".encode("latin-1"))
    line = assert_one_error_line(world("datanet", "contribute", "1", str(latin1), "--from", "bob", ok=False))
    assert "not valid UTF-8" in line
    assert _contribution_count(world) == before


def test_json_errors_are_json_on_stdout_with_a_code(world):
    proc = world.process("--json", "model", "show", "42")
    assert proc.returncode == 1 and proc.stderr == ""
    assert json.loads(proc.stdout) == {"error": {"code": "unknown_id", "message": "unknown model 42"}}
    result = world("--json", "datanet", "show", "x", ok=False)
    error = json.loads(result.output)["error"]
    assert result.exit_code == 2 and error["code"] == "usage" and "ids are whole numbers" in error["message"]
    result = world("model", "train", "--datanet", "1", "--steps", "0", "--json", ok=False)  # the command's own --json
    assert result.exit_code == 2 and json.loads(result.output)["error"]["message"].startswith("Invalid value")


def test_usage_errors_exit_2_with_the_valid_values(world):
    for args, says in (
        (("model", "train", "--datanet", "1", "--steps", "0"), "--steps': must be >= 1"),
        (("model", "train", "--datanet", "1", "--eval-fraction", "1"), "must be a finite number >= 0 and < 1"),
        (("datanet", "audit", "1", "--min-len", "0"), "must be >= 1"),
        (("serve", "--model-ids", "1", "--port", "70000"), "must be between 1 and 65535"),
        (("datanet", "bogus",), "No such command"),
    ):  # fmt: skip
        assert says in assert_one_error_line(world(*args, ok=False), 2)
