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

step "Start a local chain (Anvil) and deploy OpenToken, DatanetRegistry, ModelRegistry"
ao node start --fresh
trap 'ao node stop >/dev/null' EXIT
ao deploy --from dev:0

step "Wallets: a Datanet owner, three contributors, a spammer and a model builder (keystore v3, encrypted)"
for who in owner alice bob carol mallory builder; do
  ao wallet new "$who" >/dev/null
  ao wallet fund "$who" --eth 1 --from dev:0 >/dev/null
  ao token mint "$who" 100 --from dev:0 >/dev/null
done
ao wallet list

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
ao wallet balance owner alice bob carol mallory builder dev:0
