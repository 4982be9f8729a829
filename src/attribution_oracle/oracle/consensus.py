"""m-of-n: sign this node's report, exchange signatures with peers, submit once m signatures match.

A signature travels with the fields it signs (epoch, report URI, roots, total); a receiver keeps it only if it is in
the canonical form the contract accepts (v in {27, 28}, 0 < r, 0 < s <= n/2: a malleated high-s or v in {0, 1} /
EIP-155 copy relayed by anyone is refused, so it can never block the honest one) and recovers to a member of the on-
chain oracle set; a canonical copy replaces whatever was stored for the same signer and report. A signer seen
signing two different reports for one epoch (after a deep reorg a node rebuilds and re-signs the epoch, while its
peers still hold its stale signature) no longer counts for that epoch on this node until a rollback: the node
collects again instead of submitting with a possibly stale signature. The config (digest, signers, threshold) is re-
read every step (``refresh_config``); drafts and signatures made under another digest are dropped, and the node
resumes under the new one. Signatures over another URI than this node's report are disagreements: logged once per
peer and epoch with the differing leaves (accounts and amounts), and never block the others. Any node holding m
signatures over its own report submits, the node whose turn it is (``(index of its signer - epoch) mod n``) first
and the others after a short delay each; a node never submits an epoch the distributor has already accepted (checked
on-chain just before sending).
"""

from __future__ import annotations

import time

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from attribution_oracle.chain.chain_errors import TransactionError
from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.epochs import Draft, EpochBuilder
from attribution_oracle.oracle.logs import log, warn
from attribution_oracle.oracle.node_metrics import Metrics
from attribution_oracle.oracle.peers import Peers
from attribution_oracle.settlement.report_typed_data import (
    SECP256K1_HALF_N,
    ReportMessage,
    Signature,
    order_for_contract,
    recover_signer,
    sign_report,
)

MAX_LEAVES_LOGGED = 20
#: An asynchronously sent report transaction not mined after this long is sent again.
SUBMIT_TIMEOUT_S = 30.0
#: The "signer" recorded for a disagreement with the report the distributor accepted.
ACCEPTED_ON_CHAIN = "accepted-on-chain"


def _hex(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def _bytes(text: str) -> bytes:
    return bytes.fromhex(str(text).removeprefix("0x"))


class Consensus:
    """Signs, exchanges and submits one epoch report at a time."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        db: OracleDB,
        signer: LocalAccount,
        peers: Peers,
        builder: EpochBuilder,
        metrics: Metrics,
        submit_delay_s: float = 1.0,
        async_submit: bool = False,
    ) -> None:
        """Sign as ``signer``; ``submit_delay_s`` spaces out the nodes' submissions of the same epoch.

        ``async_submit``: send the report transaction and return at once (the node loop goes on scoring and
        following the chain); later steps watch its receipt and send again only if it reverted or was lost."""
        self.client = client
        self.deployment = deployment
        self.db = db
        self.signer = signer
        self.peers = peers
        self.builder = builder
        self.metrics = metrics
        self.submit_delay_s = submit_delay_s
        self.async_submit = async_submit
        self._in_flight: dict[tuple[int, str], tuple[str, float]] = {}  # (epoch, uri) -> (tx hash, sent at)
        self.distributor = client.contract(deployment, "RewardDistributor")
        self._oracle_set: tuple[list[str], int] | None = None
        self._ready_at: dict[tuple[int, str], float] = {}
        self._conflicts: dict[int, set[str]] = {}  # epoch -> signers seen signing two different reports for it

    def forget(self, _ancestor: int | None = None) -> None:
        """Drop the cached oracle set (and, after a rollback, what was learnt about conflicting signers)."""
        self._oracle_set = None
        if _ancestor is not None:
            self._conflicts.clear()
            self._in_flight.clear()  # a reorg may have dropped a sent report: the next step checks and resends

    def refresh_config(self) -> bool:
        """Re-read the distributor's config digest; on a change (rotation, veto) drop the cached set, the
        builder's drafts and every unsubmitted draft and signature made under the old digest. True if it changed."""
        digest = "0x" + bytes(self.client.call(self.distributor.functions.configDigest())).hex()
        known = self.db.get_meta("config_digest")
        if known == digest:
            return False
        with self.db.transaction() as db:
            accepted = "SELECT epoch, report_uri FROM submissions WHERE vetoed = 0"
            db.execute(f"DELETE FROM signatures WHERE (epoch, report_uri) NOT IN ({accepted})")
            db.execute(f"DELETE FROM epochs WHERE (epoch, report_uri) NOT IN ({accepted})")
            OracleDB.set_meta(db, "config_digest", digest)
        self.forget()
        self.builder.forget()
        self._ready_at.clear()
        if known is not None:
            log("oracle config changed: drafts and signatures under the old digest dropped", old=known, new=digest)
        return True

    def oracle_set(self) -> tuple[list[str], int]:
        """``(signers lower-case, threshold)`` of the distributor."""
        if self._oracle_set is None:
            signers = [s.lower() for s in self.client.call(self.distributor.functions.getSigners())]
            self._oracle_set = (signers, int(self.client.call(self.distributor.functions.threshold())))
        return self._oracle_set

    # ----------------------------------------------------------------- signatures

    def message(self, sig: dict) -> ReportMessage:
        """The EIP-712 message a signature dict claims to sign."""
        return ReportMessage(
            self.builder.config_digest(),
            int(sig["epoch"]),
            _bytes(sig["rewardsRoot"]),
            int(sig["totalCumulative"]),
            _bytes(sig["attributionRoot"]),
            str(sig["reportURI"]),
        )

    def receive(self, sig: dict) -> bool:
        """Verify and store a signature (from a peer or our own); False if invalid or from outside the set."""
        try:
            signature = Signature(to_checksum_address(sig["signer"]), int(sig["v"]), _bytes(sig["r"]), _bytes(sig["s"]))
            if not _canonical(signature):
                return False
            message = self.message(sig)
            recovered = recover_signer(message, self.client.chain_id, self.distributor.address, signature)
        except (KeyError, ValueError, TypeError):
            return False
        signers, _ = self.oracle_set()
        if recovered.lower() != signature.signer.lower() or recovered.lower() not in signers:
            return False
        with self.db.transaction() as db:
            stale = db.execute(
                "SELECT report_uri FROM signatures WHERE epoch = ? AND signer = ? AND report_uri != ?",
                (message.epoch, recovered.lower(), message.report_uri),
            ).fetchall()
            conflicted = self._conflicts.setdefault(message.epoch, set())
            if stale and recovered.lower() not in conflicted:  # two reports from one signer for one epoch (a reorg)
                conflicted.add(recovered.lower())
                self._ready_at = {k: v for k, v in self._ready_at.items() if k[0] != message.epoch}
                warn("signer signed two different reports for one epoch (deep reorg?): its signatures no longer "
                     "count for this epoch here, collecting again", epoch=message.epoch, signer=recovered,
                     reports=sorted({u for (u,) in stale} | {message.report_uri}))  # fmt: skip
            db.execute(
                "INSERT OR REPLACE INTO signatures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (message.epoch, message.report_uri, recovered.lower(), _hex(message.rewards_root),
                 str(message.total_cumulative), _hex(message.attribution_root), signature.v, _hex(signature.r),
                 _hex(signature.s), time.time()),
            )  # fmt: skip
        return True

    def signatures(self, epoch: int, uri: str | None = None) -> list[dict]:
        """Stored signatures of ``epoch`` (optionally only over ``uri``) as exchange dicts."""
        sql = "SELECT epoch, report_uri, signer, rewards_root, total_cumulative, attribution_root, v, r, s " \
              "FROM signatures WHERE epoch = ?"  # fmt: skip
        params: tuple = (epoch,)
        if uri is not None:
            sql += " AND report_uri = ?"
            params += (uri,)
        keys = ("epoch", "reportURI", "signer", "rewardsRoot", "totalCumulative", "attributionRoot", "v", "r", "s")
        return [dict(zip(keys, row, strict=True)) for row in self.db.query(sql, params)]

    def _own(self, draft: Draft) -> dict:
        message = draft.message
        signature = sign_report(message, self.client.chain_id, self.distributor.address, self.signer)
        return {
            "epoch": draft.epoch,
            "reportURI": draft.uri,
            "signer": signature.signer,
            "rewardsRoot": _hex(message.rewards_root),
            "totalCumulative": str(message.total_cumulative),
            "attributionRoot": _hex(message.attribution_root),
            "v": signature.v,
            "r": _hex(signature.r),
            "s": _hex(signature.s),
        }

    # ----------------------------------------------------------------------- step

    def step(self, draft: Draft) -> str:
        """Advance ``draft``: sign, exchange, maybe submit; returns what happened."""
        me = self.signer.address.lower()
        signed = self.db.scalar(
            "SELECT 1 FROM signatures WHERE epoch = ? AND report_uri = ? AND signer = ?", (draft.epoch, draft.uri, me)
        )
        if not signed:
            own = self._own(draft)
            if not self.receive(own):
                raise TransactionError(f"{self.signer.address} is not in the distributor's oracle set")
            with self.db.transaction() as db:
                db.execute("UPDATE epochs SET status = 'signed' WHERE epoch = ? AND status = 'built'", (draft.epoch,))
            self.metrics.epochs_built.inc()
            log("epoch signed", epoch=draft.epoch, uri=draft.uri)
            self.peers.push(own)
        signers, threshold = self.oracle_set()
        matching = self._matching(draft)
        if len(matching) < threshold:
            for sig in self.peers.pull(draft.epoch):
                if sig.get("signer", "").lower() != me:
                    self.receive(sig)
            matching = self._matching(draft)
        self._disagreements(draft)
        if len(matching) < threshold:
            self._ready_at.pop((draft.epoch, draft.uri), None)
            return "collecting"
        latest = int(self.client.call(self.distributor.functions.latestEpoch()))
        if latest >= draft.epoch:
            return "accepted"
        ready = self._ready_at.setdefault((draft.epoch, draft.uri), time.monotonic())
        rank = (signers.index(me) - draft.epoch) % len(signers) if me in signers else len(signers)
        if time.monotonic() - ready < rank * self.submit_delay_s:
            return "waiting for turn"
        chosen = order_for_contract(
            [Signature(to_checksum_address(s["signer"]), int(s["v"]), _bytes(s["r"]), _bytes(s["s"])) for s in matching]
        )[:threshold]
        fn = self.distributor.functions.submitReport(
            draft.epoch, draft.message.rewards_root, draft.message.total_cumulative, draft.message.attribution_root,
            draft.uri,
            [s.as_tuple() for s in chosen],
        )  # fmt: skip
        key = (draft.epoch, draft.uri)
        sent = self._in_flight.get(key) if self.async_submit else None
        if sent is not None and (state := self._submission_state(draft, *sent)) != "retry":
            return state
        what = f"submit report for epoch {draft.epoch}"
        try:
            if self.async_submit:  # checked (it would not revert now) and signed, not awaited
                tx, gas = self.client.send_nowait(fn, self.signer, what), None
                self._in_flight[key] = (tx, time.monotonic())
            else:
                receipt = self.client.send(fn, self.signer, what)
                tx, gas = receipt["transactionHash"].to_0x_hex(), receipt["gasUsed"]
        except TransactionError:
            if int(self.client.call(self.distributor.functions.latestEpoch())) >= draft.epoch:
                log("epoch submitted by a peer", epoch=draft.epoch)
                return "accepted"
            raise
        self._submitted_log(draft, tx, len(chosen), gas)
        return "submitted"

    def _submission_state(self, draft: Draft, tx: str, sent_at: float) -> str:
        """What became of this node's report transaction ``tx`` (the distributor has not accepted the epoch yet):
        ``submitting`` while it is not mined, ``retry`` once it reverted or was lost (sent again, once per loss).

        The distributor accepts one report per epoch (``epoch > latestEpoch``), so a resend can never settle an
        epoch twice: at worst it reverts, and the next step sees the epoch accepted."""
        receipt = self.client.receipt(tx)
        if receipt is None:
            if time.monotonic() - sent_at < SUBMIT_TIMEOUT_S:
                return "submitting"
            warn("report transaction not mined in time: sending again", epoch=draft.epoch, tx=tx)
        elif receipt["status"] == 1:
            return "submitting"  # mined: the follower sees ReportSubmitted once it is confirmed
        else:
            warn("report transaction reverted: sending again", epoch=draft.epoch, tx=tx)
            self.metrics.submit_retries.inc()
        self._in_flight.pop((draft.epoch, draft.uri), None)
        return "retry"

    def _submitted_log(self, draft: Draft, tx: str, signatures: int, gas: int | None) -> None:
        with self.db.transaction() as db:
            db.execute("UPDATE epochs SET status = 'submitting', submit_tx = ? WHERE epoch = ?", (tx, draft.epoch))
        self.metrics.epochs_submitted.inc()
        log("epoch submitted", epoch=draft.epoch, uri=draft.uri, tx=tx, signatures=signatures,
            inferences=len(draft.report.inferences), gas=gas)  # fmt: skip

    def _matching(self, draft: Draft) -> list[dict]:
        message = draft.message
        conflicted = self._conflicts.get(draft.epoch, set())
        return [
            s
            for s in self.signatures(draft.epoch, draft.uri)
            if s["signer"] not in conflicted
            and s["rewardsRoot"] == _hex(message.rewards_root)
            and int(s["totalCumulative"]) == message.total_cumulative
            and s["attributionRoot"] == _hex(message.attribution_root)
        ]

    def _disagreements(self, draft: Draft) -> None:
        rows = self.db.query(
            "SELECT report_uri, signer FROM signatures WHERE epoch = ? AND report_uri != ? AND (epoch, report_uri, "
            "signer) NOT IN (SELECT epoch, report_uri, signer FROM disagreements)",
            (draft.epoch, draft.uri),
        )
        for uri, signer in rows:
            other = self.builder.load(uri)
            leaves = _differing_leaves(draft.report.rewards, other.rewards) if other else []
            detail = f"{len(leaves)} differing accounts" if other else "their report is unavailable"
            warn("disagreement", epoch=draft.epoch, ours=draft.uri, theirs=uri, signer=signer, detail=detail,
                 leaves=leaves[:MAX_LEAVES_LOGGED])  # fmt: skip
            self.metrics.disagreements.inc()
            with self.db.transaction() as db:
                db.execute(
                    "INSERT OR IGNORE INTO disagreements VALUES (?, ?, ?, ?)", (draft.epoch, uri, signer, detail)
                )

    def audit_accepted(self) -> int:
        """Log, once per epoch, every accepted report that differs from the one this node built for that epoch.

        This does not depend on signature timing: whichever node was outvoted learns it from the chain and logs
        the differing leaves (accounts and amounts). Returns how many new disagreements were logged.
        """
        rows = self.db.query(
            "SELECT e.epoch, e.report_uri, s.report_uri FROM epochs e JOIN submissions s ON s.epoch = e.epoch "
            "WHERE s.vetoed = 0 AND s.report_uri != e.report_uri AND (e.epoch, s.report_uri, ?) NOT IN "
            "(SELECT epoch, report_uri, signer FROM disagreements)",
            (ACCEPTED_ON_CHAIN,),
        )
        logged = 0
        for epoch, ours_uri, accepted_uri in rows:
            ours, accepted = self.builder.load(ours_uri), self.builder.load(accepted_uri)
            if ours is None or accepted is None:
                continue  # retried on a later pass, once both reports are at hand
            leaves = _differing_leaves(ours.rewards, accepted.rewards)
            detail = f"accepted report differs from ours: {len(leaves)} differing accounts"
            warn("disagreement", epoch=epoch, ours=ours_uri, theirs=accepted_uri, signer=ACCEPTED_ON_CHAIN,
                 detail=detail, leaves=leaves[:MAX_LEAVES_LOGGED])  # fmt: skip
            self.metrics.disagreements.inc()
            with self.db.transaction() as db:
                db.execute(
                    "INSERT OR IGNORE INTO disagreements VALUES (?, ?, ?, ?)",
                    (epoch, accepted_uri, ACCEPTED_ON_CHAIN, detail),
                )
            logged += 1
        return logged


def _canonical(signature: Signature) -> bool:
    """The only form ``RewardDistributor.submitReport`` accepts: v in {27, 28}, 0 < r, 0 < s <= n/2."""
    r, s = int.from_bytes(signature.r, "big"), int.from_bytes(signature.s, "big")
    return (
        signature.v in (27, 28) and len(signature.r) == len(signature.s) == 32 and r > 0 and 0 < s <= SECP256K1_HALF_N
    )


def _differing_leaves(ours: dict[str, int], theirs: dict[str, int]) -> list[dict]:
    """Accounts whose cumulative amounts differ between two reports."""
    return [
        {"account": a, "ours": str(ours.get(a, 0)), "theirs": str(theirs.get(a, 0))}
        for a in sorted(set(ours) | set(theirs), key=str.lower)
        if ours.get(a, 0) != theirs.get(a, 0)
    ]
