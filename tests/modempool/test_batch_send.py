"""A batch queued chunk by chunk (`Pool.queue_chunks`, `AccountPool.send_chunks`), on both
engines: all or nothing across chunks, refusals named by their row in the whole batch, the
quota counted before anything is written when no message can be a retry (else at the end),
the idempotent retry finding every message again."""

from __future__ import annotations

import pytest

from modempool import Pool
from modempool.accounts import Accounts, QuotaExceeded
from modempool.errors import (Blacklisted, InvalidNumber, InvalidRow, OptedOut, RowError,
                              UnsendableText)


@pytest.fixture
def pool(config, spool_target):
    with Pool.open(config, spool_path=spool_target) as pool:
        accounts = Accounts(pool.spool)
        accounts.add("shop", "sender", per_day=5000)
        accounts.add("root", "admin")
        yield pool


def numbers(count: int, first: int = 0) -> list[str]:
    return [f"13{i:09d}" for i in range(first, first + count)]


def chunked(items: list[str], size: int):
    """The numbers in chunks, each made when asked for (as a streamed body hands them over)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def test_chunks_are_queued_in_order_with_the_keys_of_a_whole_batch(pool):
    queued = pool.queue_chunks(chunked(numbers(2500), 1000), "通知", client_id="k")
    assert len(queued) == 2500 and queued.fresh == 2500
    messages = pool.spool.get_many(queued.ids.tolist())
    assert [m.to for m in messages] == [f"+86{n}" for n in numbers(2500)]
    assert {m.text for m in messages} == {"通知"}
    assert pool.spool.get_by_client_id("k:2500").id == queued.ids[-1]
    again = pool.queue_chunks(chunked(numbers(2500), 700), "通知", client_id="k")
    assert again.ids == queued.ids and again.fresh == 0
    assert pool.counts()["queued"] == 2500


def test_a_bad_number_in_the_last_chunk_queues_nothing_and_is_named_by_its_row(pool):
    batch = numbers(2999) + ["12"]
    with pytest.raises(InvalidRow) as refused:
        pool.queue_chunks(chunked(batch, 1000), "hi")
    assert refused.value.row == 3000 and "row 3000" in str(refused.value)
    assert pool.counts()["queued"] == 0


def test_a_blacklisted_or_opted_out_number_anywhere_refuses_the_batch(pool):
    pool.add_to_blacklist(["13000001500"])
    with pytest.raises(RowError) as refused:
        pool.queue_chunks(chunked(numbers(2000), 600), "hi")
    assert refused.value.row == 1501 and isinstance(refused.value.problem, Blacklisted)
    assert pool.counts()["queued"] == 0
    with pytest.raises(Blacklisted):   # one number: the refusal itself, as `queue` gives it
        pool.queue_chunks([["13000001500"]], "hi")


def test_one_number_keeps_the_key_and_an_unnumbered_error(pool):
    with pytest.raises(InvalidNumber) as refused:
        pool.queue_chunks([["12"], []], "hi")
    assert not isinstance(refused.value, RowError)
    one = pool.queue_chunks([[], ["13800138000"]], "hi", client_id="solo")
    assert pool.spool.get_by_client_id("solo").id == one.ids[0]
    with pytest.raises(InvalidNumber, match="no recipient"):
        pool.queue_chunks([[], []], "hi")
    with pytest.raises(UnsendableText):
        pool.queue_chunks([["13800138000"]], "   ")


def test_an_accounts_streamed_send_is_owned_counted_and_idempotent(pool):
    shop = pool.for_account(Accounts(pool.spool).get("shop"))
    batch = shop.send_chunks(chunked(numbers(3000), 1000), "通知", client_id="order-1")
    assert len(batch) == 3000 and batch.parts == 1
    pages = list(shop.queued_pages(batch, size=1000))
    assert [len(p) for p in pages] == [1000, 1000, 1000]
    assert pages[0][0].to == "+8613000000000" and pages[2][-1].state == "queued"
    again = shop.send_chunks(chunked(numbers(3000), 999), "通知", client_id="order-1")
    assert again.ids == batch.ids   # the retry costs no quota: 3000 of 5000 used
    assert len(shop.list(limit=1000)[0]) == 1000   # its own messages
    with pytest.raises(QuotaExceeded) as over:
        shop.send_chunks(chunked(numbers(2001, 10_000), 1000), "通知")
    assert "per-day quota is 5000: 3000 queued today, 2001 more asked" in str(over.value)
    assert pool.counts()["queued"] == 3000


def test_an_opted_out_number_refuses_the_batch_with_block_direct(config, spool_target):
    config.write_text(config.read_text(encoding="utf-8") + "\n[optout]\nblock_direct = true\n",
                      encoding="utf-8")
    with Pool.open(config, spool_path=spool_target) as pool:
        pool.add_optouts(["13000000002"])
        with pytest.raises(RowError) as refused:
            pool.queue_chunks(chunked(numbers(5), 2), "hi")
        assert refused.value.row == 3 and isinstance(refused.value.problem, OptedOut)
        assert len(pool.queue_chunks(chunked(numbers(5), 2), "hi", to_opted_out=True)) == 5


def rows_written(spool) -> int:
    """A figure that any row written moves, even when rolled back: SQLite's count of rows
    changed through the spool's connection, PostgreSQL's message id sequence."""
    if spool.engine.name == "sqlite":
        return spool.engine.conn.total_changes
    return spool.rows("SELECT last_value FROM messages_id_seq")[0][0]


def test_a_streamed_send_without_a_key_over_the_quota_writes_nothing(pool):
    shop = pool.for_account(Accounts(pool.spool).get("shop"))
    shop.send_chunks(chunked(numbers(3000), 1000), "通知")
    before, read = rows_written(pool.spool), []

    def counted(items):
        for chunk in chunked(items, 1000):
            read.append(len(chunk))
            yield chunk

    with pytest.raises(QuotaExceeded) as over:
        shop.send_chunks(counted(numbers(2001, 10_000)), "通知", count=2001)
    assert "per-day quota is 5000: 3000 queued today, 2001 more asked" in str(over.value)
    assert read == [] and rows_written(pool.spool) == before   # refused before the first chunk
    assert pool.counts()["queued"] == 3000
    # with a key, a retry's messages cost nothing: the quota counts those new to the call
    shop.send_chunks(chunked(numbers(2000, 20_000), 1000), "通知", client_id="k", count=2000)
    again = shop.send_chunks(chunked(numbers(2000, 20_000), 1000), "通知", client_id="k",
                             count=2000)
    assert len(again) == 2000 and pool.counts()["queued"] == 5000
