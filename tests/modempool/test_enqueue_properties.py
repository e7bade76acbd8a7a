"""Property (issue 12): any text and any number either queue a message that the dispatcher can send,
or are refused at enqueue with one clear line. Nothing enqueue accepts can fail inside the
dispatcher's loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modempool.config import Config
from modempool.dispatch.dispatcher import Dispatcher
from modempool.errors import PoolError
from modempool.spool import Spool
from pdu import encode_submit, parts_needed

MAX_PARTS = 4

digits = st.text(st.sampled_from("0123456789"), min_size=0, max_size=16)
numbers = st.one_of(
    st.text(max_size=24),                                         # anything at all
    st.builds(lambda p, d: p + d, st.sampled_from(["", "+", "+86", "-", "00", "+86 138", "(", "%"]),
              digits),
    st.sampled_from(["13800138000", "+8613800138000", "-13800138000", "+1 202 555 0143"]),
)
texts = st.one_of(
    st.text(max_size=80),                                         # every code point, surrogates too
    st.text(st.sampled_from("长a€ \x00\t\n😀{"), max_size=700),  # around the part limits
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "长", "😀", " ", "€"]),
              st.integers(0, 2000)),
)


@pytest.fixture(scope="module")
def spool(tmp_path_factory) -> Iterator[Spool]:
    """One spool for every example: what an example adds is told apart by its id, and a
    spool made per example cost more than the example itself (300 of them)."""
    with Spool(tmp_path_factory.mktemp("enqueue") / "spool.db", max_parts=MAX_PARTS) as made:
        yield made


def _ids(spool: Spool) -> set[int]:
    return {row[0] for row in spool.rows("SELECT id FROM messages")}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(number=numbers, text=texts)
@example(number="-13800138000", text="hello")
@example(number="13800138000", text="长" * 20000)
@example(number="13800138000", text="   ")
def test_enqueue_accepts_only_what_the_dispatcher_can_send(spool, number, text):
    before = _ids(spool)
    try:
        message = spool.enqueue(number, text)
    except PoolError as exc:                      # refused: one clear line
        reason = str(exc)
        assert reason and "\n" not in reason and "Traceback" not in reason
        assert _ids(spool) == before              # and nothing queued
        return
    assert _ids(spool) == before | {message.id}
    assert message.to.startswith("+") and message.to[1:].isdigit()
    assert not number.lstrip().startswith("-")
    # What the dispatcher does with it: count its parts, then encode each one.
    dispatcher = Dispatcher(spool, Config.default(), owner="test", slots=[])
    assert dispatcher.parts_or_reason(message) == parts_needed(text).parts <= MAX_PARTS
    assert spool.get(message.id).state.value == "queued"
    parts = encode_submit(message.to, message.text, status_report=True,
                          reference=message.id % 256)
    assert 1 <= len(parts) <= MAX_PARTS
