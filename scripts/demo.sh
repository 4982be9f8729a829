#!/usr/bin/env bash
# `make demo`: the whole story so far on a local Anvil chain, through the real CLI.
# Everything lives in .demo/ (chain state, wallets, blobs, catalog); the node is stopped at the end
# with its state saved, so `attribution-oracle --home .demo node start` brings the same chain back.
set -euo pipefail
cd "$(dirname "$0")/.."

export ATTRIBUTION_HOME="$PWD/.demo"
export ATTRIBUTION_ACCOUNTS_DIR="$ATTRIBUTION_HOME/accounts"
export ATTRIBUTION_PASSWORD="${ATTRIBUTION_PASSWORD:-demo-password}"
export ATTRIBUTION_RPC="http://127.0.0.1:${DEMO_PORT:-8545}"
ao() { attribution-oracle "$@"; }
STEP_NAMES=() STEP_STARTS=()
step() { STEP_NAMES+=("$*"); STEP_STARTS+=("$SECONDS"); printf '\n\033[1m== %s\033[0m\n' "$*"; }
step_times() {  # how long each step took (printed at the end, also when a step fails)
  [ "${#STEP_NAMES[@]}" -gt 0 ] || return 0
  printf '\n== Step times (total %d s)\n' "$SECONDS"
  for i in "${!STEP_NAMES[@]}"; do
    end=$([ "$((i + 1))" -lt "${#STEP_NAMES[@]}" ] && echo "${STEP_STARTS[$((i + 1))]}" || echo "$SECONDS")
    printf '%5d s  %.90s\n' "$((end - STEP_STARTS[i]))" "${STEP_NAMES[$i]}"
  done
}

DEMO_BASE="${DEMO_BASE:-smollm2}"    # DEMO_BASE=tiny:0 for a quick run
DEMO_STEPS="${DEMO_STEPS:-12}"
SERVE_PORT="${DEMO_SERVE_PORT:-8600}"
ORACLE_PORT="${DEMO_ORACLE_PORT:-8700}"
EPOCH_BLOCKS=10
PIDS=()
cleanup() {
  step_times
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  ao node stop >/dev/null 2>&1 || true
}

ao node stop >/dev/null 2>&1 || true
rm -rf "$ATTRIBUTION_HOME"

step "Wallets: a Datanet owner, three contributors, a spammer, a model builder, an agent, a serving operator and three oracles"
ao wallet new owner alice bob carol mallory builder agent operator oracle1 oracle2 oracle3 >/dev/null
ao wallet list

step "Start a local chain (Anvil) and deploy the contracts (oracle set: 3 signers, any 2 sign a report)"
ao node start --fresh --block-time 1
trap cleanup EXIT
ao deploy --from dev:0 --oracle-signer oracle1 --oracle-signer oracle2 --oracle-signer oracle3 --threshold 2 \
  --operator operator --epoch-blocks "$EPOCH_BLOCKS"
ao wallet fund owner alice bob carol mallory builder agent operator oracle1 oracle2 oracle3 --eth 1 --from dev:0 >/dev/null
ao token mint owner alice bob carol mallory builder agent 100 --from dev:0 >/dev/null

step "The owner creates a Datanet (10 OPEN fee to the treasury; each contribution stakes 5 OPEN)"
ao datanet create "Practical beekeeping" --metadata-uri "https://example.org/beekeeping.json" --min-stake 5 --from owner

step "Contributors store their files and contribute them (stake escrowed by the registry)"
for who in alice bob carol mallory; do
  ao datanet contribute 1 "demo/corpus/$who" --from "$who"
done

step "The curator audits pending contributions for copies before approving (each against those sent before it)"
ao datanet audit 1 --pending

step "Curation: approve most, reject one off-topic document, reject the spam as malicious (stake slashed)"
ao datanet approve $(seq 1 22) 24 $(seq 25 36) --from owner
ao datanet reject 23 --from owner
ao datanet reject 37 --malicious --from owner

step "Publish version 1: the Merkle root of the approved contributions in approval order"
ao datanet publish 1 --from owner

step "ModelFactory: verify every blob against the version's Merkle root, fine-tune a LoRA adapter on SmolLM2-135M,"
echo "   build its gradient and span indices, store the provenance manifest and register the model"
ao model train --datanet 1@1 --base "$DEMO_BASE" --steps "$DEMO_STEPS" --seq-len 128 --batch-size 4 \
  --register --price 0.5 --split 5000/4000/1000 --from builder
ao model show 1

step "Tables"
ao datanet list
ao datanet show 1
ao model list

step "OpenLoRA serves model 1 with retrieval (--rag: its top 2 training contributions go into each prompt and are"
echo "   recorded and paid); three oracle nodes (any 2 of 3 sign) follow the chain and the served log"
SERVER="http://127.0.0.1:$SERVE_PORT"
export ATTRIBUTION_SERVER="$SERVER"
mkdir -p "$ATTRIBUTION_HOME/logs"
attribution-oracle serve --model-ids 1 --base "$DEMO_BASE" --port "$SERVE_PORT" --operator operator --rag --top-k 2 \
  >"$ATTRIBUTION_HOME/logs/serve.log" 2>&1 &
PIDS+=($!)
for i in 1 2 3; do
  peers=()
  for j in 1 2 3; do [ "$i" = "$j" ] || peers+=(--peer "http://127.0.0.1:$((ORACLE_PORT + j))"); done
  attribution-oracle oracle run --wallet "oracle$i" --port "$((ORACLE_PORT + i))" "${peers[@]}" --served "$SERVER" \
    --confirmations 1 --epoch-blocks "$EPOCH_BLOCKS" >"$ATTRIBUTION_HOME/logs/oracle$i.log" 2>&1 &
  PIDS+=($!)
done
wait_for() {  # wait_for URL SECONDS
  for _ in $(seq 1 "$2"); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "timed out waiting for $1" >&2; return 1
}
wait_for "$SERVER/health" 300
for i in 1 2 3; do wait_for "http://127.0.0.1:$((ORACLE_PORT + i))/health" 120; done
echo "server and oracle nodes are up (logs in $ATTRIBUTION_HOME/logs)"

step "An agent pays for prompts on-chain and runs them on the server (402 without a payment)"
curl -s -o /dev/null -w "unpaid request -> HTTP %{http_code}\n" "$SERVER/v1/completions" \
  -H 'content-type: application/json' -d '{"model": "1", "prompt": "free honey?", "request_id": 999}'
for prompt in "How often should I inspect a hive in spring?" "When do bees forage furthest?" \
  "How do I recognise American foulbrood?" "When is honey ready to harvest?"; do
  printf '\nQ: %s\n' "$prompt"
  ao infer 1 "$prompt" --chat --wallet agent --max-tokens 64
done

step "The oracle nodes attribute each inference, sign epoch reports, exchange signatures and submit"
for _ in $(seq 1 240); do
  settled=$(ao --json report show 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["inferences"]))' 2>/dev/null || echo 0)
  [ "$settled" -ge 4 ] && break
  sleep 1
done
[ "$settled" -ge 4 ] || { echo "the oracle did not settle the 4 inferences; see $ATTRIBUTION_HOME/logs" >&2; exit 1; }
ao oracle status --wallet oracle1
uri=$(ao --json report show | python3 -c 'import json,sys; print(json.load(sys.stdin)["uris"][-1])')
ao report verify "$uri"

step "Contributors claim (bob's claim is sent by the operator as a relayer; the OPEN still goes to bob)"
ao rewards show owner alice bob carol
ao rewards claim alice --from alice
ao rewards claim bob --from operator
ao rewards claim carol --from carol
ao rewards claim owner --from owner

# --- issue 14: an agent that pays its own way (AgentVault + x402 + per-token prices) ---------------------------
step "A second Datanet (hive health) and a per-token model trained on it; the server restarts serving both models"
ao wallet new agentkey >/dev/null   # the agent's session key: it only signs, it holds nothing
ao wallet new facilitator >/dev/null && ao wallet fund facilitator --eth 1 --from dev:0 >/dev/null
ao datanet create "Hive health" --min-stake 1 --from owner
ao datanet contribute 2 demo/corpus/carol --from carol
ao datanet approve $(seq 38 49) --from owner
ao datanet publish 2 --from owner
ao model train --datanet 2@1 --base "$DEMO_BASE" --steps "$DEMO_STEPS" --seq-len 128 --batch-size 4 \
  --register --price 0.5 --split 5000/4000/1000 --from builder
ao model rates 2 --input-per-1k 0.05 --output-per-1k 0.5 --flat 0.01 --from builder
kill -TERM "${PIDS[0]}" && wait "${PIDS[0]}" || true
attribution-oracle serve --model-ids 1,2 --base "$DEMO_BASE" --port "$SERVE_PORT" --operator operator \
  --facilitator facilitator --rag --top-k 2 >>"$ATTRIBUTION_HOME/logs/serve.log" 2>&1 &
PIDS[0]=$!
wait_for "$SERVER/health" 300
step "The agent registers with its card, stakes, gets a budget and a capped session key, then plans a season"
echo "   of hive inspections on both models: every call paid per token from its vault over x402"
AGENT_ID=$(ao --json agent register --name "season planner" --models 1,2 --from agent \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["agentId"])')
ao agent stake "$AGENT_ID" 10 --from agent
ao agent fund "$AGENT_ID" 20 --from agent
ao agent grant "$AGENT_ID" --key agentkey --models 1,2 --max-per-call 1 --period 1d --period-cap 8 \
  --total-cap 15 --expires-in 7d --from agent
ao agent run --key agentkey --server "$SERVER" --task demo/agent-task.json
ao agent status "$AGENT_ID" --key agentkey
# --- end of issue 14 -------------------------------------------------------------------------------------------

step "Per inference, its top contributions from the scorer and its citations (the contributions retrieved with"
echo "   --rag, each paid a fixed share); then who earned what (every party: the totals are what the agent paid)"
ao report show --top 3
ao model earnings builder
ao model withdraw --from builder
ao rewards show owner alice bob carol
ao wallet balance owner alice bob carol mallory builder agent operator dev:0

step "The explorer: every inference with its spans and contributions, every contributor's earnings, every report verified"
EXPLORER="http://127.0.0.1:${DEMO_EXPLORER_PORT:-8650}"
attribution-oracle explorer --port "${DEMO_EXPLORER_PORT:-8650}" >"$ATTRIBUTION_HOME/logs/explorer.log" 2>&1 &
PIDS+=($!)
wait_for "$EXPLORER/health" 120
alice=$(ao --json wallet list | python3 -c 'import json,sys; print(next(w["address"] for w in json.load(sys.stdin) if w["alias"] == "alice"))' 2>/dev/null || true)
echo "explorer: $EXPLORER/   (alice's contributions and what they earned: $EXPLORER/contributors/$alice)"
if [ "${DEMO_KEEP:-0}" = "1" ]; then
  echo "DEMO_KEEP=1: the chain, the server, the oracle nodes and the explorer keep running; Ctrl-C stops them all"
  wait "${PIDS[-1]}"
else
  echo "(it stops with the demo; run with DEMO_KEEP=1 to keep it open)"
fi
