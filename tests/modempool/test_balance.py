"""Balance tracking: per-operator rules, checked by USSD or by an SMS query, stored per SIM,
shown in status; low balance raises an event and a warning; a SIM out of credit leaves the
rotation until it is topped up."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from modempool.config import parse_config
from modempool.errors import ConfigError
from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, eventually, kill_leftovers,
                                            modempool_cli, network_messages, write_config)

pytestmark = pytest.mark.timeout(90)

USSD_RULE = """
[[balance]]
ussd = "*100#"
low = 5
empty = 0.1
"""


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def test_balance_rules_are_typed_and_checked(tmp_path):
    config = parse_config('[[balance]]\noperator = "China Mobile"\nsms_to = "10086"\n'
                          'sms_text = "CXYE"\npattern = "余额([0-9.]+)元"\nlow = 10\n'
                          '[[balance]]\nussd = "*100#"\n', tmp_path / "m.toml")
    mobile = config.balance_rule("china mobile")
    assert (mobile.sms_to, mobile.sms_text, mobile.low) == ("10086", "CXYE", 10.0)
    assert mobile.amount("尊敬的客户，您的余额12.50元，本月已用3.20元") == 12.5
    assert config.balance_rule("China Unicom").ussd == "*100#"       # the catch-all rule
    assert config.balance_rule("China Unicom").amount("Your balance is 7.25 CNY.") == 7.25
    assert config.balance_rule("China Unicom").amount("no number here") is None
    for bad, problem in (('ussd = "*100#"\nsms_to = "10086"\nsms_text = "X"', "either ussd"),
                         ('sms_to = "10086"', "needs both sms_to and sms_text"),
                         ('ussd = "*100#"\npattern = "(["', "not a regular expression"),
                         ('ussd = "*100#"\nlow = 1\nempty = 2', "low must not be below empty"),
                         ('ussd = "*100#"\nlow = "lots"', "expected a number")):
        with pytest.raises(ConfigError, match=problem) as error:
            parse_config(f"[[balance]]\n{bad}\n", tmp_path / "m.toml")
        assert "m.toml, line " in str(error.value) and "[[balance]] #1" in str(error.value)


async def cli(*args: str, config: Path):
    return await asyncio.to_thread(modempool_cli, *args, config=config)


async def test_ussd_balance_low_and_empty_and_topped_up(tmp_path):
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=5) as bank:
        bank.modem("m1").sim.balance = 0.05
        bank.modem("m2").sim.balance = 3.0
        config = write_config(tmp_path / "pool.toml", bank.devices, extra=USSD_RULE)
        spool = Spool(tmp_path / "spool.db")
        daemon = await DaemonProcess(config).start()
        await eventually(lambda: all((spool.sim(n) or {}).get("balance_at") for n in ("m1", "m2")),
                         what="both balances checked")
        assert (spool.sim("m1")["balance"], spool.sim("m1")["no_credit"]) == (0.05, 1)
        assert (spool.sim("m2")["balance"], spool.sim("m2")["no_credit"]) == (3.0, 0)
        kinds = {(e["kind"], e["sim"]) for e in spool.events()}
        assert {("balance-empty", "m1"), ("balance-low", "m2")} <= kinds
        await daemon.wait_for_log("out of credit (balance 0.05)")
        await daemon.wait_for_log("low balance: 3.00")

        shown = json.loads((await cli("status", "--json", config=config)).stdout)
        assert {s["name"]: s["balance"] for s in shown["sims"]} == {"m1": 0.05, "m2": 3.0}
        assert "out of credit" in (await cli("status", config=config)).stdout

        ids = [spool.enqueue("+8613800138000", f"notice {i}").id for i in range(3)]
        await eventually(lambda: all(spool.get(i).state.value in ("sent", "delivered")
                                     for i in ids), what="3 sent")
        assert {spool.get(i).sim for i in ids} == {"m2"}               # never the empty SIM

        bank.modem("m1").sim.balance = 20.0                            # topped up at the shop
        answer = await cli("ussd", "m1", "*100#", config=config)       # and checked by hand
        assert answer.returncode == 0 and "20.00" in answer.stdout
        assert (spool.sim("m1")["balance"], spool.sim("m1")["no_credit"]) == (20.0, 0)
        again = spool.enqueue("+8613800138000", "after top-up", sims=["m1"])
        await eventually(lambda: spool.get(again.id).state.value in ("sent", "delivered"),
                         what="m1 sends again")
        assert ("balance-topped-up", "m1") in {(e["kind"], e["sim"]) for e in spool.events()}
        await daemon.stop()


async def test_balance_by_sms_query_and_reply(tmp_path):
    rule = ('\n[[balance]]\nsms_to = "10086"\nsms_text = "CXYE"\n'
            'pattern = "余额([0-9.]+)元"\nlow = 5\n')
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=9) as bank:
        config = write_config(tmp_path / "pool.toml", bank.devices, extra=rule)
        spool = Spool(tmp_path / "spool.db")
        daemon = await DaemonProcess(config).start()
        query = await eventually(lambda: [m for m in network_messages(bank)
                                          if m["text"] == "CXYE"], what="the CXYE query")
        assert query[0]["to"].endswith("10086")
        await bank.inject(to="m1", sender="10086", text="尊敬的客户，您的余额12.50元。")
        await eventually(lambda: (spool.sim("m1") or {}).get("balance") == 12.5,
                         what="balance read from the reply")
        assert "余额12.50元" in spool.sim("m1")["balance_text"]
        await daemon.stop()
