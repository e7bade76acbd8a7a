"""The rest of a long SMS cut between parts goes out only from the card that sent its parts
out (rev24 F2): the message is bound to the modem's name (recovery, a requeue, a retry), and
the card in that modem may have changed. A modem holding another card sends nothing of it: the
message becomes AMBIGUOUS, its error naming the card and the modem. Both engines: the spool's
rule on a real spool, then the daemon's sending path on a simulated bank."""

from __future__ import annotations

import pytest

from modempool.spool import MessageState, Spool
from tests.modempool.daemon_harness import eventually
from tests.modempool.spool_driver import claim_next
from tests.modempool.test_ambiguity_same_card import CARD_C, CARD_D, HOLDER, IMSI_C, card_in
from tests.modempool.test_dispatch import DONE, LONG as THREE_PARTS, MOBILE, parts_on_air, pool

pytestmark = pytest.mark.timeout(300)

TO = "+8613800138000"
TWO_PARTS = "长" * 100
OWNER = "host-a:1:run-a/m1"


def _cut(spool: Spool, card: str | None, text: str = TWO_PARTS, to: str = TO) -> int:
    """A message whose part 1 `card` sent from m1 (None: a modem that read no card), the claim
    then cut and recovered: QUEUED, bound to m1, the card's hold let go."""
    if card is not None:
        assert spool.card_holders.take(card, HOLDER, "m1", lambda _owner: True) is None
    spool.claims.require_hold(OWNER, None if card is None else (card, HOLDER, "m1"))
    total = 3 if text == THREE_PARTS else 2
    message = spool.enqueue(to, text)
    claimed = spool.claim(message.id, "m1", OWNER, 60)
    spool.mark_part_writing(message.id, 1, total, lease_owner=OWNER)
    spool.mark_part_sent(message.id, 1, message.id % 256, 10, attempt=claimed.attempts, sim="m1")
    assert spool.parts(message.id)[0]["card"] == card
    spool.claims.require_hold(OWNER, None)
    spool.card_holders.let_go(HOLDER)
    assert spool.recover_leases(owner=OWNER).requeued == (message.id,)
    assert spool.get(message.id).sims == ("m1",)
    return message.id


def test_a_modem_holding_another_card_may_not_resume(spool_target):
    """Fails on 0919573 (no such check: m1 holding card D would write part 2)."""
    with Spool(spool_target) as spool:
        message_id = _cut(spool, CARD_C)
        card_in(spool, CARD_D, "m1")
        assert claim_next(spool, "m1", "m1") is not None
        why = spool.resume_refusal(message_id, "m1", "m1")
        assert why is not None and why.startswith(
            f"the card that sent part 1 ({CARD_C}) is no longer in m1 (it holds {CARD_D} now)")
        card_in(spool, None, "m1")                       # a modem that reads no card now
        assert "(it reads no card now)" in spool.resume_refusal(message_id, "m1", "m1")


def test_the_card_still_in_place_resumes(spool_target):
    """The control: the same card (or its IMSI key, linked to it) in m1 goes on."""
    with Spool(spool_target) as spool:
        message_id = _cut(spool, CARD_C)
        card_in(spool, CARD_C, "m1")
        assert spool.resume_refusal(message_id, "m1", "m1") is None
        spool.sims.upsert("m1", iccid=CARD_C, imsi=IMSI_C)   # the spool links both keys
        card_in(spool, f"imsi:{IMSI_C}", "m1")            # read by its IMSI alone now
        assert spool.resume_refusal(message_id, "m1", "m1") is None


def test_parts_written_with_no_card_keep_the_name_rule(spool_target):
    with Spool(spool_target) as spool:
        message_id = _cut(spool, None)
        card_in(spool, CARD_D, "m1")
        assert spool.resume_refusal(message_id, "m1", "m1") is None


async def test_the_daemon_leaves_a_message_whose_card_moved_ambiguous(tmp_path, spool_target,
                                                                      spool_setting):
    """Card C sent part 1 from m1; C is in m2 now and D in m1: m1 sends nothing of it, and it
    is AMBIGUOUS naming C and m1. Fails on 0919573: m1 sends parts 2 and 3 from D's number."""
    with Spool(spool_target) as spool:
        message_id = _cut(spool, CARD_C, THREE_PARTS, MOBILE)
    async with pool(tmp_path, 2, spool_setting=spool_setting,
                    iccids={"m1": CARD_D, "m2": CARD_C}) as (bank, spool, _daemon):
        await eventually(lambda: spool.get(message_id).state is not MessageState.QUEUED
                         and spool.get(message_id).state is not MessageState.SENDING)
        message = spool.get(message_id)
        assert message.state is MessageState.AMBIGUOUS, message
        assert message.error.startswith(f"m1: the card that sent part 1 ({CARD_C}) is no "
                                        f"longer in m1 (it holds {CARD_D} now)")
        assert parts_on_air(bank) == []
        assert [p["seq"] for p in spool.parts(message_id)] == [1]
    spool.close()


async def test_the_daemon_goes_on_from_the_card_still_in_place(tmp_path, spool_target,
                                                               spool_setting):
    """The control: card C still in m1 sends parts 2 and 3."""
    with Spool(spool_target) as spool:
        message_id = _cut(spool, CARD_C, THREE_PARTS, MOBILE)
    async with pool(tmp_path, 2, spool_setting=spool_setting,
                    iccids={"m1": CARD_C, "m2": CARD_D}) as (bank, spool, _daemon):
        await eventually(lambda: spool.get(message_id).state.value in DONE)
        assert parts_on_air(bank) == [("m1", 2), ("m1", 3)]
        assert {p["card"] for p in spool.parts(message_id)} == {CARD_C}
    spool.close()
