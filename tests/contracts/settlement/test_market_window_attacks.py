"""Refund vs serve race (issue 13, attack 11): `markServed` holds only inside the service window."""

from __future__ import annotations

import ape
import pytest
from settlement_helpers import SERVICE_WINDOW, STATUS_PAID, STATUS_REFUNDED, STATUS_SERVED, pay


@pytest.fixture
def paid(system, funded_payer, model_id):
    return pay(system, funded_payer, model_id)


def test_attack_operator_marks_served_after_the_window_to_front_run_a_refund(
    system, token, funded_payer, operator, stranger, paid, chain
):
    chain.pending_timestamp = paid.paidAt + SERVICE_WINDOW + 1  # the payer's refund is now due
    with ape.reverts("InferenceMarket: service window closed"):
        system.markServed([paid.arg()], sender=operator)
    assert system.requestStatus(paid.requestId) == STATUS_PAID
    before = token.balanceOf(funded_payer)
    system.refund(paid.arg(), sender=stranger)
    assert token.balanceOf(funded_payer) - before == paid.fee
    assert system.requestStatus(paid.requestId) == STATUS_REFUNDED


def test_mark_served_in_the_last_second_of_the_window_still_settles(system, operator, paid, chain):
    chain.pending_timestamp = paid.paidAt + SERVICE_WINDOW
    system.markServed([paid.arg()], sender=operator)
    assert system.requestStatus(paid.requestId) == STATUS_SERVED


def test_one_expired_receipt_fails_the_whole_mark_served_batch(system, funded_payer, operator, model_id, chain):
    early = pay(system, funded_payer, model_id, label="early")
    chain.pending_timestamp = early.paidAt + SERVICE_WINDOW - 5
    late = pay(system, funded_payer, model_id, label="late")
    chain.pending_timestamp = early.paidAt + SERVICE_WINDOW + 1
    with ape.reverts("InferenceMarket: service window closed"):
        system.markServed([late.arg(), early.arg()], sender=operator)
    system.markServed([late.arg()], sender=operator)
    assert system.requestStatus(late.requestId) == STATUS_SERVED
