"""Opt-out keywords (NFKC, case), the inbound handler, blacklist import/export, direct-send flag."""

from __future__ import annotations

import pytest

from modempool.operator.campaign_plan import preview
from modempool.operator.campaigns import Campaigns
from modempool.config import load_config
from modempool.operator.contacts import AddressBook, Selection
from modempool.operator.hooks import inbound_handlers
from modempool.operator.importers import ImportRejected
from modempool import Pool
from modempool.config import OptOutConfig
from modempool.errors import Blacklisted, InvalidRow, OptedOut
from modempool.operator.optout import OptOutList


@pytest.fixture
def make(tmp_path, spool_target):
    """make(extra config) -> (spool, config), the spool on each engine."""
    opened = []
    where = (f'url = "{spool_target}"' if str(spool_target).startswith("postgresql")
             else 'path = "spool.db"')

    def make(extra: str = ""):
        path = tmp_path / "modempool.toml"
        path.write_text(f'[spool]\n{where}\n' + extra, "utf-8")
        config = load_config(path)
        spool = config.open_spool()
        opened.append(spool)
        return spool, config
    yield make
    for spool in opened:
        spool.close()


@pytest.mark.parametrize("text", ["TD", "td", "ＴＤ", " 退订 ", "Stop!", "t。", "unsubscribe", "Ｎ"])
def test_default_keywords_match_whole_text_any_case_or_width(text):
    assert OptOutConfig().matches(text) is not None


@pytest.mark.parametrize("text", ["TDD", "Tomorrow", "不退订", "STOP sending me jokes", "好的", ""])
def test_other_texts_do_not_opt_out(text):
    assert OptOutConfig().matches(text) is None


def test_configured_keywords_replace_the_defaults(make):
    _, config = make('[optout]\nkeywords = ["取消", "QX"]\n')
    settings = config.optout
    assert settings.matches("ｑｘ") == "QX" and settings.matches("TD") is None


async def run_handlers(handlers, spool, message, config):
    for handler in handlers:
        result = handler(spool, message, config)
        if hasattr(result, "__await__"):
            await result


async def test_inbound_opt_out_stops_later_campaigns_and_confirms(make):
    spool, config = make('[optout]\nconfirm = true\nconfirm_text = "已退订"\n')
    book = AddressBook(spool.db)
    book.upsert("13800138000", "张三", groups=["客户"])
    book.upsert("13900139000", "李四", groups=["客户"])
    first = Campaigns(spool, config).create("一", "新品上市", groups=Selection(("客户",)))
    assert Campaigns(spool, config).start(first.id).enqueued == 2
    inbound = spool.store_inbound("+8613800138000", "ＴＤ", sim="m2")
    await run_handlers(inbound_handlers(config), spool, inbound, config)
    assert OptOutList(spool.db).is_opted_out("13800138000")
    (confirmation,) = [m for m in spool.list() if m.campaign_id is None]
    assert (confirmation.to, confirmation.text, confirmation.sims) == ("+8613800138000", "已退订", ("m2",))
    # the same message handled twice (a restart) confirms once
    await run_handlers(inbound_handlers(config), spool, inbound, config)
    assert len([m for m in spool.list() if m.campaign_id is None]) == 1
    second = Campaigns(spool, config).create("二", "周末促销", groups=Selection(("客户",)))
    assert preview(spool.db, second, config).opted_out_removed == 1
    Campaigns(spool, config).start(second.id)
    assert [m.to for m in spool.list(campaign_id=second.id)] == ["+8613900139000"]
    assert OptOutList(spool.db).optouts()[0]["keyword"] == "TD"


async def test_short_code_sender_is_ignored(make):
    spool, config = make()
    inbound = spool.store_inbound("10086", "T", sim="m1")
    await run_handlers(inbound_handlers(config), spool, inbound, config)
    assert OptOutList(spool.db).optouts() == [] and spool.list() == []


def test_direct_sends_allowed_by_flag_blacklist_never(make):
    spool, config = make()
    optouts = OptOutList(spool.db)
    optouts.add("13800138000")
    optouts.add_to_blacklist(["13900139000"], "complaint")
    pool = Pool(config, spool=spool)
    pool.check_recipients(["13800138000"])          # opted out: direct sends still allowed
    with pytest.raises(Blacklisted):
        pool.check_recipients(["13900139000"])
    strict, strict_config = make("[optout]\nblock_direct = true\n")
    OptOutList(strict.db).add("13800138000")
    with pytest.raises(OptedOut):
        Pool(strict_config, spool=strict).check_recipients(["13800138000"])


def test_a_bad_number_among_a_batch_is_placed_by_a_field_not_by_words(make):
    """Which of a batch's numbers is bad is `row`, and `problem` is the error about it alone:
    the CLI says "argument 2" and the console "第 2 行" without taking the message apart."""
    from modempool.web.console.errors import describe

    spool, config = make()
    pool = Pool(config, spool=spool)
    for add in (lambda numbers: pool.add_optouts(numbers, source="manual"),
                lambda numbers: pool.add_to_blacklist(numbers, "complaint")):
        with pytest.raises(InvalidRow) as refused:
            add(["13800138000", "abc"])
        bad = refused.value
        assert bad.row == 2 and bad.params["row"] == 2 and bad.code == bad.problem.code
        assert str(bad.problem).startswith("'abc' is not a phone number")
        assert str(bad) == f"row 2: {bad.problem}"
        assert describe(bad, "zh").startswith("第 2 行：abc 不是电话号码")
    assert pool.optout_list() == [] and pool.blacklist() == []


def test_blacklist_import_is_all_or_nothing_and_exports(make, tmp_path):
    spool, _ = make()
    optouts = OptOutList(spool.db)
    bad = tmp_path / "黑名单.txt"
    bad.write_bytes("13800138000\n13900139000 投诉\n110\n".encode("gbk"))
    with pytest.raises(ImportRejected) as caught:
        optouts.import_blacklist(bad)
    assert [r.line for r in caught.value.report.rejected] == [3]
    assert optouts.blacklist() == []
    good = tmp_path / "ok.txt"
    good.write_text("13800138000\n13900139000\n", "utf-8")
    assert optouts.import_blacklist(good).imported == 2
    assert optouts.export(tmp_path / "out.csv") == 2
    assert (tmp_path / "out.csv").read_text("utf-8-sig").splitlines()[1].startswith("+8613800138000,imported")
    assert optouts.blocked_for_campaigns() == {"+8613800138000", "+8613900139000"}


async def test_an_opted_out_sender_gets_the_confirmation_and_no_auto_reply(make):
    """The daemon's inbound handlers in their order: 退订 is confirmed once (the opt-out
    handler); whatever the sender writes after, no auto-reply answers it, while another
    sender asking the same gets the answer."""
    from modempool.operator.autoreply import AutoReplies

    spool, config = make('[optout]\nconfirm = true\nconfirm_text = "已退订"\n'
                         '[[autoreply]]\nkeywords = ["营业时间", "退订"]\nreply = "每天 9:00-18:00"\n')
    for text in ("退订", "营业时间？"):
        inbound = spool.store_inbound("+8613800138000", text, sim="m1")
        await run_handlers(inbound_handlers(config), spool, inbound, config)
    inbound = spool.store_inbound("+8613900139000", "营业时间？", sim="m1")
    await run_handlers(inbound_handlers(config), spool, inbound, config)
    assert sorted((m.to, m.text) for m in spool.list()) == [
        ("+8613800138000", "已退订"), ("+8613900139000", "每天 9:00-18:00")]
    assert [(r.sender, r.outcome) for r in AutoReplies(spool.db).log()] == [
        ("+8613900139000", "replied"), ("+8613800138000", "opted_out")]


def test_a_dispatch_rounds_messages_are_checked_together_each_by_its_own_rule(make):
    """The claim-time rule for a round (`send_refusal`): one answer per message, in order,
    each by its number's lists and its own kind (a campaign's stopped by an opt-out, a direct
    one not), the blacklist above all."""
    from dataclasses import replace

    from modempool.operator.hooks import send_refusal

    spool, config = make()
    blocked, opted, free = "+8613800138001", "+8613800138002", "+8613800138003"
    book = OptOutList(spool.db)
    direct = spool.enqueue(opted, "direct")
    bulk = replace(direct, client_id=f"job:1:2026-12-06:{opted}")
    book.add(opted, keyword="TD", source="reply")
    book.add_to_blacklist([blocked])
    barred = spool.enqueue(blocked, "to the blacklist")
    clear = spool.enqueue(free, "nobody objects")
    reasons = send_refusal(spool, config)([clear, direct, barred, bulk, clear])
    assert reasons[0] is None and reasons[1] is None and reasons[4] is None
    assert reasons[2].startswith("on the blacklist since")
    assert reasons[3].startswith("opted out at")
    assert send_refusal(spool, config)([]) == []


def test_a_round_of_more_numbers_than_one_query_may_carry_is_checked_in_chunks(make):
    """Enqueue's lookup (`listed`) and the claim-time rule (`send_refusal`) ask the lists in
    chunks: 33,000 numbers are more parameters than one PostgreSQL statement may carry (65,535
    for both lists), more than an SQLite built with a limit of 32,766 (or 999) takes. Numbers
    listed at the start, past the first chunk and at the end are each found."""
    from dataclasses import replace

    from modempool.operator.hooks import send_refusal

    spool, config = make()
    numbers = [f"+86138{i:08d}" for i in range(33_000)]
    book = OptOutList(spool.db)
    book.add_to_blacklist([numbers[0], numbers[501], numbers[-1]])
    book.add(numbers[700], keyword="TD", source="reply")
    book.add(numbers[-2], keyword="TD", source="reply")
    first = spool.enqueue(numbers[1], "a campaign's", client_id="job:1:2026-12-06:x")
    messages = [replace(first, to=number) for number in numbers]
    reasons = send_refusal(spool, config)(messages)
    refused = {i: reason.split(" ")[0] for i, reason in enumerate(reasons) if reason}
    assert refused == {0: "on", 501: "on", 700: "opted", 32_998: "opted", 32_999: "on"}
    assert book.listed(numbers) == ({numbers[0], numbers[501], numbers[-1]},
                                    {numbers[700], numbers[-2]})


def test_the_lists_are_asked_in_one_statement_a_chunk(make):
    """Both lists (blacklist, opt-outs) in one statement per chunk of numbers: the claim-time
    rule of a dispatch round costs one round trip (two before: each list its own)."""
    from dataclasses import replace
    from unittest.mock import ANY

    from modempool.operator.optout import LOOKUP_CHUNK, listed_since, send_time_check

    spool, _config = make()
    book = OptOutList(spool.db)
    numbers = [f"+86139{i:08d}" for i in range(2 * LOOKUP_CHUNK + 1)]
    book.add_to_blacklist([numbers[0]])
    book.add(numbers[-1], keyword="TD", source="reply")
    check = send_time_check(spool.db)
    asked: list[str] = []

    class Counted:
        """The spool's own connection, its statements counted."""

        def execute(self, sql, parameters=()):
            asked.append(sql)
            return spool.db.execute(sql, parameters)

    assert listed_since(Counted(), numbers) == ({numbers[0]: ANY}, {numbers[-1]: ANY})
    assert len(asked) == 3   # 1,001 numbers: three chunks
    asked.clear()
    message = spool.enqueue(numbers[0], "to the blacklist")
    assert replace(check, db=Counted())(message).startswith("on the blacklist since")
    assert len(asked) == 1
