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
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

ao node stop >/dev/null 2>&1 || true
rm -rf "$ATTRIBUTION_HOME"

step "Wallets: a Datanet owner, three contributors, a spammer, a model builder, an agent, a serving operator and three oracles"
for who in owner alice bob carol mallory builder agent operator oracle1 oracle2 oracle3; do
  ao wallet new "$who" >/dev/null
done
ao wallet list

step "Start a local chain (Anvil) and deploy the contracts (oracle set: 3 signers, any 2 sign a report)"
ao node start --fresh
trap 'ao node stop >/dev/null' EXIT
ao deploy --from dev:0 --oracle-signer oracle1 --oracle-signer oracle2 --oracle-signer oracle3 --threshold 2 \
  --operator operator
for who in owner alice bob carol mallory builder agent operator oracle1 oracle2 oracle3; do
  ao wallet fund "$who" --eth 1 --from dev:0 >/dev/null
done
for who in owner alice bob carol mallory builder agent; do
  ao token mint "$who" 100 --from dev:0 >/dev/null
done

step "The owner creates a Datanet (10 OPEN fee to the treasury; each contribution stakes 5 OPEN)"
ao datanet create "Practical beekeeping" --metadata-uri "https://example.org/beekeeping.json" --min-stake 5 --from owner

step "Contributors store their files and contribute them (stake escrowed by the registry)"
for who in alice bob carol mallory; do
  ao datanet contribute 1 "demo/corpus/$who" --from "$who"
done

step "Curation: approve most, reject one off-topic document, reject the spam as malicious (stake slashed)"
ao datanet approve $(seq 1 22) 24 $(seq 25 36) --from owner
ao datanet reject 23 --from owner
ao datanet reject 37 --malicious --from owner

step "Publish version 1: the Merkle root of the approved contributions in approval order"
ao datanet publish 1 --from owner

step "A model builder registers a model trained on datanet 1 version 1"
# Training lands with the ModelFactory issue; until then the demo registers the adapter card below.
ao model register --base demo/models/base-model.txt --adapter demo/models/adapter-card.json \
  --datanet 1@1 --price 0.5 --split 5000/4000/1000 --from builder

step "Tables"
ao datanet list
ao datanet show 1
ao model list

step "An agent pays for four inferences (0.5 OPEN each, one transaction); the operator serves them"
ao market pay 1 --from agent \
  --prompt "How often should I inspect a hive in spring?" \
  --prompt "When do bees forage furthest?" \
  --prompt "How do I recognise American foulbrood?" \
  --prompt "When is honey ready to harvest?"
ao market serve 1 2 3 4 --from operator
ao market show 1 2 3 4

step "Epoch 1: the settlement code splits each inference's data pools by fixed example attributions"
# Until the oracle computes attributions, demo/example-scores.json holds them: {request: {contribution: score}}.
uri=$(ao --json report build --epoch 1 --scores demo/example-scores.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["uri"])')
echo "report: $uri"
ao report sign "$uri" --from oracle1
ao report sign "$uri" --from oracle3
ao report submit "$uri" --from operator
ao report verify "$uri"

step "Contributors claim (bob's claim is sent by the operator as a relayer; the OPEN still goes to bob)"
ao wallet balance owner alice bob carol
ao rewards show owner alice bob carol
ao rewards claim alice --from alice
ao rewards claim bob --from operator
ao rewards claim carol --from carol
ao rewards claim owner --from owner
ao rewards show owner alice bob carol
ao wallet balance owner alice bob carol mallory builder agent dev:0
