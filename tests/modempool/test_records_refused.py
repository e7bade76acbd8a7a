"""Records written one by one after the database refused them together (`recording.py`,
`_one_by_one`): when one of them can be neither recorded nor called ambiguous
(`OutcomeRefused`), those committed before it are done, said once as sent, and not written
again with the one still kept (which would log them as if their lease had been taken over)."""

from __future__ import annotations

import logging

from modempool.config import Config
from modempool.dispatch.dispatcher import Dispatcher
from modempool.spool import Spool
from modempool.spool.records import SentPart
from tests.modempool.test_marker_ahead import (allow_ambiguity, refuse_ambiguity_of,
                                               refuse_records_of)


def _confirmed(spool: Spool, text: str, sim: str, reference: int) -> SentPart:
    """A message claimed by `sim`, its one part marked and confirmed by the modem."""
    message = spool.enqueue("+8613800138000", text)
    owner = f"test/{sim}"
    assert spool.claim(message.id, sim, owner) is not None
    spool.mark_part_writing(message.id, 1, 1, lease_owner=owner)
    return SentPart(message.id, 1, None, reference, lease_owner=owner)


async def test_records_committed_before_an_outcome_refused_are_not_written_again(
        spool_target, caplog):
    with Spool(spool_target) as spool:
        dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=[])
        fine = _confirmed(spool, "fine", "m1", 41)
        stuck = _confirmed(spool, "refused record", "m2", 42)
        refuse_records_of(spool, "refused record")
        refuse_ambiguity_of(spool, "refused record")
        mlog = logging.getLogger("modempool.modem.test")
        pending = [(fine, mlog, "+8613800138000", 1), (stuck, mlog, "+8613800138000", 1)]
        with caplog.at_level(logging.INFO, logger="modempool"):
            assert dispatcher.recording._write_records(pending) is None   # kept: tried again later
            assert spool.get(fine.message_id).state.value == "sent"
            assert [entry[0] for entry in pending] == [stuck]   # only what is not written
            [said] = [r.getMessage() for r in caplog.records
                      if r.getMessage().startswith(f"message {fine.message_id} to")]
            assert "sent (1 part), reference 41" in said and "taken over" not in said
            allow_ambiguity(spool)
            assert dispatcher.recording._write_records(pending) == [None]   # called ambiguous now
        assert spool.get(stuck.message_id).state.value == "ambiguous"
        assert "taken over" not in caplog.text, caplog.text
