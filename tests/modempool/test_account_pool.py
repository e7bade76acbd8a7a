"""The pool as one account sees it (`Pool.for_account`), without the HTTP layer: the role
rules of the operator features live in the library, so every front end gets them."""

from __future__ import annotations

import pytest

from modempool import Pool
from modempool.accounts import Accounts, Forbidden
from modempool.errors import PoolError


@pytest.fixture
def pool(config, spool_target):
    with Pool.open(config, spool_path=spool_target) as pool:
        accounts = Accounts(pool.spool)
        for name, role in (("root", "admin"), ("shop", "sender"), ("audit", "viewer")):
            accounts.add(name, role)
        yield pool


def as_account(pool, name):
    return pool.for_account(Accounts(pool.spool).get(name))


def test_a_viewer_changes_no_contact_or_group_through_the_library(pool):
    shop, audit = as_account(pool, "shop"), as_account(pool, "audit")
    shop.upsert_contact("13800138000", "王芳", groups=["家长"])
    edits = [lambda: audit.upsert_contact("13800138001", "李雷"),
             lambda: audit.upsert_contact("13800138000", "改名"),
             lambda: audit.remove_contact("13800138000"),
             lambda: audit.create_group("老师"),
             lambda: audit.delete_group("家长"),
             lambda: audit.add_to_group("家长", ["13800138000"]),
             lambda: audit.remove_from_group("家长", ["13800138000"])]
    for edit in edits:
        with pytest.raises(Forbidden, match="viewer") as refused:
            edit()
        assert isinstance(refused.value, PoolError)
    [contact] = audit.contacts()   # a viewer still reads the book, unchanged
    assert (contact.number, contact.name, list(contact.groups)) == ("+8613800138000", "王芳", ["家长"])
    assert [g["name"] for g in audit.groups()] == ["家长"]


def test_a_sender_edits_contacts_and_groups_and_only_an_admin_has_the_banks_lists(pool):
    shop = as_account(pool, "shop")
    shop.create_group("老师")
    shop.upsert_contact("13800138000", "王芳")
    assert shop.add_to_group("老师", ["13800138000"]) == 1
    assert [c.number for c in shop.contacts(group="老师")] == ["+8613800138000"]
    assert shop.remove_from_group("老师", ["13800138000"]) == 1
    shop.remove_contact("13800138000")
    assert shop.contact("13800138000") is None
    for bank_feature in (shop.accounts, shop.webhooks):
        with pytest.raises(Forbidden, match="not an admin"):
            bank_feature()
    assert as_account(pool, "root").optout_list() == []


def test_opting_out_a_batch_through_the_pool_is_all_or_nothing(pool):
    from modempool.errors import InvalidNumber

    with pytest.raises(InvalidNumber, match=r"row 3: '1380013800x' is not"):
        pool.add_optouts(["13800138000", "13800138001", "1380013800x"])
    assert pool.optouts.optouts() == []
    pool.add_optouts(["13800138000"])
    assert pool.add_optouts(["13800138000", "13800138001"], source="api") == 1
    assert [(r["number"], r["source"]) for r in pool.optouts.optouts()] == [
        ("+8613800138000", "manual"), ("+8613800138001", "api")]
    with pytest.raises(Forbidden):
        as_account(pool, "audit").add_optouts(["13800138002"])


def test_a_conversation_shows_only_texts_received_on_the_accounts_sims(pool):
    Accounts(pool.spool).add("shop1", "sender", sims=["m1"])
    pool.spool.store_inbound("13800138000", "hello shop1", sim="m1")
    pool.spool.store_inbound("13800138000", "for m2 only", sim="m2")
    [conversation] = as_account(pool, "shop1").conversations()
    assert (conversation.last_text, conversation.count) == ("hello shop1", 1)
    [conversation] = as_account(pool, "root").conversations()
    assert (conversation.last_text, conversation.count) == ("for m2 only", 2)


def test_a_birthday_is_stored_as_a_date_whichever_front_end_saves_the_contact(pool):
    shop = as_account(pool, "shop")
    assert shop.upsert_contact("13800138001", "王芳", birthday="5月17日").birthday == "05-17"
    assert pool.save_contact("13800138002", "李雷", birthday="1990/5/7").birthday == "1990-05-07"
    with pytest.raises(PoolError, match="'garbage' is not a date") as refused:
        shop.upsert_contact("13800138003", "韩梅", birthday="garbage")
    assert (refused.value.code, refused.value.params) == ("birthday_invalid", {"birthday": "garbage"})
    with pytest.raises(PoolError, match="not a date"):
        shop.upsert_contact("13800138001", birthday="2月30日")
    assert [(c.number, c.birthday) for c in shop.contacts()] == [
        ("+8613800138001", "05-17"), ("+8613800138002", "1990-05-07")]   # nothing else stored


def test_a_campaign_bound_to_a_sim_the_bank_lacks_is_refused_by_every_front_end(pool):
    from modempool.errors import UnknownSim

    campaigns = as_account(pool, "root").campaign_desk()   # what the API and the console call
    with pytest.raises(UnknownSim, match="no modem named nosuch") as refused:
        campaigns.create("x", "hi", numbers=["13800138000"], kind="notice", sims=["nosuch"])
    assert refused.value.code == "unknown_sim"
    with pytest.raises(UnknownSim):
        pool.create_campaign("y", "hi", numbers=["13800138000"], kind="notice", sims=["nosuch"])
    assert campaigns.list() == []
    # one saved while m2 was configured: it is neither started nor re-run
    saved = campaigns.create("z", "hi", numbers=["13800138000"], kind="notice", sims=["m1"])
    pool.spool.db.execute("UPDATE campaigns SET sims = '[\"m2\"]' WHERE id = ?", [saved.id])
    for refused_step in (lambda: campaigns.start(saved.id), lambda: pool.rerun_campaign(saved.id)):
        with pytest.raises(UnknownSim, match="no modem named m2"):
            refused_step()
    assert pool.spool.list() == [] and len(campaigns.list()) == 1


def test_a_failed_add_to_a_new_group_leaves_no_group_and_refusals_name_their_subject(pool):
    from modempool.errors import NotFound

    shop, audit = as_account(pool, "shop"), as_account(pool, "audit")
    shop.upsert_contact("13800138000", "王芳")
    with pytest.raises(NotFound, match="13800138009"):
        shop.add_to_group("新组", ["13800138000", "13800138009"])
    assert [g["name"] for g in shop.groups()] == []        # one transaction: no empty group
    assert shop.contact("13800138000").groups == ()
    refusals = {"contacts": lambda: audit.upsert_contact("13800138001"),
                "groups": lambda: audit.create_group("老师"),
                "opt-outs and the blacklist": lambda: audit.add_optouts(["13800138001"])}
    for subject, edit in refusals.items():
        with pytest.raises(Forbidden, match=f"may look at {subject}, not change them") as refused:
            edit()
        assert refused.value.code.startswith("may_not_change_")


def test_an_accounts_messages_received_sms_and_thread_are_its_own(pool):
    from modempool.errors import NotFound

    Accounts(pool.spool).add("shop1", "sender", sims=["m1"])
    shop1, root = as_account(pool, "shop1"), as_account(pool, "root")
    [mine] = shop1.send(["13800138000"], "您的快递到了")
    [theirs] = root.send(["13800138000"], "root 的通知")
    assert [m.id for m in shop1.list()[0]] == [mine.id]
    assert [m.id for m in root.page()[0]] == [theirs.id, mine.id]   # an admin sees all
    with pytest.raises(NotFound):
        shop1.get(theirs.id)
    assert shop1.counts()["queued"] == 1 and root.counts()["queued"] == 2
    pool.spool.store_inbound("13800138000", "收到，谢谢", sim="m1")
    pool.spool.store_inbound("13800138000", "m2 上的回复", sim="m2")
    received, cursor = shop1.inbound()
    assert [r.message.text for r in received] == ["收到，谢谢"] and cursor is None
    thread = shop1.thread("+8613800138000")
    assert [(item.dir, item.text) for item in thread.items] == [
        ("out", "您的快递到了"), ("in", "收到，谢谢")]
    assert thread.to_dict()["items"][1] == {
        "dir": "in", "id": received[0].message.id, "text": "收到，谢谢",
        "at": thread.items[1].at, "sim": "m1", "unread": True, "optout": None}
    assert thread.to_dict()["items"][0]["state"] == "queued"
    [conversation] = shop1.conversations()
    assert conversation.unread == 0   # the thread was read
    status = shop1.status()   # typed, as Pool.status() is
    assert status.queue["queued"] == 1 and len(status.throughput) == 60
    assert [sim.name for sim in status.sims] == ["m1"]
    assert status.to_dict()["throughput"] == [0] * 60


def test_an_accounts_sims_are_typed_and_their_to_dict_is_the_apis_shape(pool):
    from modempool import AccountSim

    Accounts(pool.spool).add("shop1", "sender", sims=["m1"])
    pool.spool.upsert_sim("m1", state="up", signal=-71, operator="CMCC", msisdn="+8613900000001")
    [sim] = as_account(pool, "shop1").sims()
    assert isinstance(sim, AccountSim) and (sim.name, sim.signal, sim.number) == (
        "m1", -71, "+8613900000001")
    assert list(sim.to_dict().items()) == [   # GET /v1/sims, key for key in its order
        ("name", "m1"), ("state", sim.state), ("signal", -71), ("operator", "CMCC"),
        ("number", "+8613900000001"),
        ("sent", {"minute": 0, "today": 0, "month": 0, "total": 0}),
        ("quota", {"per_minute": None, "per_day": None, "per_month": None}),
        ("errors", 0), ("last_error", None), ("updated_at", sim.updated_at)]
