"""Records written one by one after the database refused them together (`recording.py`,
`_one_by_one`): one that can be neither recorded nor called ambiguous (`OutcomeRefused`) is
kept alone, the others of its batch (other SIMs') are written and said once; a bug met while
calling one ambiguous is no refusal (its traceback, once; not kept); and recovery settles each
message alone, one the database refuses to settle left SENDING (`recovery.py`)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from modempool.config import Config
from modempool.dispatch.dispatcher import Dispatcher
from modempool.dispatch.recording import OutcomeRefused
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool import Spool
from modempool.spool.claims import Claims
from modempool.spool.records import Records, SentPart
from tests.modempool.test_marker_ahead import (allow_ambiguity, refuse_ambiguity_of,
                                               refuse_records_of)

TO = "+8613800138000"


def _confirmed(spool: Spool, text: str, sim: str, reference: int) -> SentPart:
    """A message claimed by `sim`, its one part marked and confirmed by the modem."""
    message = spool.enqueue(TO, text)
    owner = f"test/{sim}"
    assert spool.claim(message.id, sim, owner) is not None
    spool.mark_part_writing(message.id, 1, 1, lease_owner=owner)
    return SentPart(message.id, 1, None, reference, lease_owner=owner)


def _said(caplog, message_id: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith(f"message {message_id} to")]


async def test_a_refused_outcome_keeps_back_its_own_record_alone(spool_target, caplog):
    """Three SIMs' records in one batch, the middle one refused for good: the first and the
    last are recorded and said once as sent; only the middle one is kept, to be tried again
    (on the old code the whole batch was kept and the third left unrecorded)."""
    with Spool(spool_target) as spool:
        dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=[])
        recording = dispatcher.recording
        first = _confirmed(spool, "first", "m1", 41)
        stuck = _confirmed(spool, "refused record", "m2", 42)
        last = _confirmed(spool, "last", "m3", 43)
        refuse_records_of(spool, "refused record")
        refuse_ambiguity_of(spool, "refused record")
        mlog = logging.getLogger("modempool.modem.test")
        pending = [(sent, mlog, TO, 1) for sent in (first, stuck, last)]
        with caplog.at_level(logging.INFO, logger="modempool"):
            outcomes = recording._write_records(list(pending))
            assert outcomes is not None
            recording._settled(pending, outcomes)
            recording.close()   # no timer left behind by the test
            assert [spool.get(s.message_id).state.value for s in (first, stuck, last)] == [
                "sent", "sending", "sent"]
            assert [entry[0] for entry in recording._unrecorded] == [stuck]   # kept alone
            for sent in (first, last):
                [said] = _said(caplog, sent.message_id)
                assert "taken over" not in said
            assert any(f"message {stuck.message_id}: its outcome is refused by the database"
                       in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
            allow_ambiguity(spool)
            assert recording._write_records(recording._unrecorded) == [None]   # ambiguous now
        assert spool.get(stuck.message_id).state.value == "ambiguous"
        assert "taken over" not in caplog.text, caplog.text


async def test_markers_asked_together_with_a_refused_record_are_each_written_alone(
        spool_target, caplog, monkeypatch):
    """Two SIMs' next markers asked in one turn of the loop, each with its SIM's previous
    record, one of them refused (a trigger): on a database server they go in one batch, which
    fails whole, and each is then written alone: the refused record called ambiguous (an
    outcome, committed) and its SIM's marker written, the other record and marker committed.
    Each SIM then goes on. On SQLite (one thread) each goes alone from the start."""
    with Spool(spool_target) as spool:
        lane = SpoolLane.for_spool(spool, threads=2)
        dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=[], lane=lane)
        recording = dispatcher.recording
        fine = _confirmed(spool, "fine", "m1", 41)
        refused = _confirmed(spool, "refused record", "m2", 42)
        following = {}
        for sim in ("m1", "m2"):
            message = spool.enqueue(TO, f"next of {sim}")
            assert spool.claim(message.id, sim, f"test/{sim}") is not None
            following[sim] = message.id
        refuse_records_of(spool, "refused record")
        mlog = logging.getLogger("modempool.modem.test")
        part = SimpleNamespace(seq=1, total=1)
        batches = []
        together = Records.mark_sent_then_writing_each

        def spied(self, markings):
            batches.append(len(markings))
            return together(self, markings)

        monkeypatch.setattr(Records, "mark_sent_then_writing_each", spied)
        try:
            with caplog.at_level(logging.INFO, logger="modempool"):
                for sent in (fine, refused):
                    recording.record_soon(sent, mlog, TO, 1)
                outcomes = await asyncio.gather(*(
                    recording.mark_ahead(f"test/{sim}", following[sim], part)
                    for sim in ("m1", "m2")))
        finally:
            recording.close()
            lane.close()
        assert outcomes == [([True], None), ([None], None)]
        assert [spool.get(s.message_id).state.value for s in (fine, refused)] == [
            "sent", "ambiguous"]
        assert [[p["state"] for p in spool.parts(following[sim])] for sim in ("m1", "m2")] == [
            ["writing"], ["writing"]]
        assert recording._unrecorded == []
        assert batches == ([2] if lane.parallel else [])   # one batch, then each alone
        [said] = _said(caplog, fine.message_id)
        assert "taken over" not in said


async def test_a_bug_in_calling_a_record_ambiguous_is_no_refusal(spool_target, caplog,
                                                                  monkeypatch):
    """A TypeError raised while calling a refused record ambiguous is a bug, not the
    database's refusal: not wrapped as OutcomeRefused (on the old code it was, and kept for
    ever without a traceback), its traceback logged once, the entry not kept (its lease is
    left for recovery), the other records written."""
    with Spool(spool_target) as spool:
        dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=[])
        recording = dispatcher.recording
        buggy = _confirmed(spool, "refused record", "m1", 41)
        fine = _confirmed(spool, "fine", "m2", 42)
        refuse_records_of(spool, "refused record")

        def broken(self, *args, **kwargs):
            raise TypeError("a bug in mark_ambiguous")

        monkeypatch.setattr(Claims, "mark_ambiguous", broken)
        mlog = logging.getLogger("modempool.modem.test")
        pending = [(buggy, mlog, TO, 1), (fine, mlog, TO, 1)]
        with caplog.at_level(logging.INFO, logger="modempool"):
            outcomes = recording._write_records(list(pending))
            assert outcomes is not None
            assert isinstance(outcomes[0], TypeError)
            assert not isinstance(outcomes[0], OutcomeRefused)
            assert outcomes[1] is True
            recording._settled(pending, outcomes)
            recording.close()
        assert recording._unrecorded == []   # not tried again and again
        [traced] = [r for r in caplog.records if r.exc_info is not None]
        assert isinstance(traced.exc_info[1], TypeError)
        assert f"message {buggy.message_id}" in traced.getMessage()
        assert spool.get(fine.message_id).state.value == "sent"
        assert spool.get(buggy.message_id).state.value == "sending"   # for recovery


def test_recovery_settles_each_message_alone(spool_target, caplog):
    """A daemon's leases recovered while the database refuses to call one of its messages
    ambiguous: that one stays SENDING (one ERROR line naming it, no traceback), the others
    are settled (on the old code the whole recovery raised and settled none)."""
    with Spool(spool_target) as spool:
        stuck = _confirmed(spool, "refused record", "m1", 41)
        unwritten = spool.enqueue(TO, "never written")
        assert spool.claim(unwritten.id, "m2", "test/m2") is not None
        written = _confirmed(spool, "written, no answer", "m3", 43)
        refuse_ambiguity_of(spool, "refused record")
        with caplog.at_level(logging.INFO, logger="modempool"):
            recovery = spool.recover_leases(include_live=True)
        assert recovery.refused == (stuck.message_id,)
        assert recovery.requeued == (unwritten.id,)
        assert recovery.ambiguous == (written.message_id,)
        assert [spool.get(i).state.value for i in (stuck.message_id, unwritten.id,
                                                   written.message_id)] == [
            "sending", "queued", "ambiguous"]
        [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert f"message {stuck.message_id}: recovery could not settle it" in line.getMessage()
        assert line.exc_info is None
        allow_ambiguity(spool)
        assert spool.recover_leases(include_live=True).ambiguous == (stuck.message_id,)
