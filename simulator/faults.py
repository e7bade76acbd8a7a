"""The faults a simulated modem can be given, at start or while it runs: their names and
parameters, and what setting or lifting one does to the modem's SIM, stores and commands."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simulator.at_syntax import AtFailure
from simulator.network import PinState

if TYPE_CHECKING:
    from simulator.modem import VirtualModem


class Fault(enum.StrEnum):
    """Kinds of misbehaviour; parameters in brackets are optional keyword arguments."""

    LATENCY = "latency"  # [seconds] before every final result
    SMS_LATENCY = "sms_latency"  # [seconds] a send takes before +CMGS
    CMS_ERROR = "cms_error"  # [code=500, count=None] sends are rejected by the network
    NO_REGISTRATION = "no_registration"  # not registered: CREG 0, sends fail with +CMS ERROR: 331
    SIM_ABSENT = "sim_absent"  # no SIM inserted: +CME ERROR: 10
    PIN_LOCKED = "pin_locked"  # [pin="1234"] the SIM asks for its PIN (3 wrong -> PUK)
    HANG_AFTER_PDU = "hang_after_pdu"  # [delivered=True] silent after the PDU is written
    PROMPT_GIVE_UP = "prompt_give_up"  # [seconds=0, code=None] leaves its "> " prompt unfed
    HANG = "hang"  # stops answering at once
    UNPLUG = "unplug"  # [duration] the pty disappears; comes back after duration if given
    GARBAGE = "garbage"  # [length=8] noise bytes before every reply
    BOOT_NOISE = "boot_noise"  # vendor boot URCs printed now (and when the port reappears)
    STORAGE_FULL = "storage_full"  # every message store full: +CMS ERROR: 322
    BALANCE = "balance"  # [messages=K, code=21] the SIM runs out of credit after K more parts
    NO_STATUS_REPORT = "no_status_report"  # status reports never come back
    COMMAND_ERROR = "command_error"  # [command="+CMGR", code=500, count=None] that command fails


DEFAULT_PARAMS: dict[Fault, dict[str, Any]] = {
    Fault.LATENCY: {"seconds": 1.0},
    Fault.SMS_LATENCY: {"seconds": 3.0},
    Fault.CMS_ERROR: {"code": 500, "count": None},
    Fault.PIN_LOCKED: {"pin": "1234"},
    Fault.HANG_AFTER_PDU: {"delivered": True},
    Fault.PROMPT_GIVE_UP: {"seconds": 0.0, "code": None},
    Fault.UNPLUG: {"duration": None},
    Fault.GARBAGE: {"length": 8},
    Fault.BALANCE: {"messages": 0, "code": 21},
    Fault.COMMAND_ERROR: {"command": "+CMGR", "code": 500, "count": None},
}


def fault_params(kind: Fault | str, given: Mapping[str, Any]) -> tuple[Fault, dict[str, Any]]:
    """Validate a fault name and merge its parameters over the defaults."""
    try:
        fault = Fault(kind)
    except ValueError:
        raise ValueError(
            f"unknown fault {kind!r}; choose one of {', '.join(f.value for f in Fault)}"
        ) from None
    defaults = DEFAULT_PARAMS.get(fault, {})
    unknown = set(given) - set(defaults)
    if unknown:
        raise ValueError(f"fault {fault.value!r} takes no parameter(s) {sorted(unknown)}; "
                         f"it takes {sorted(defaults) or 'none'}")
    return fault, {**defaults, **given}


def apply_fault(modem: VirtualModem, fault: Fault, params: Mapping[str, Any]) -> None:
    """What a fault just set changes at once (the others are read where they act)."""
    if fault is Fault.PIN_LOCKED:
        modem.sim.pin = str(params["pin"])
        modem.sim.pin_state = PinState.PIN
        modem.sim.pin_attempts = 3
    elif fault is Fault.STORAGE_FULL:
        for store in modem.stores.values():
            store.full = True
    elif fault is Fault.BALANCE:
        modem.sim.sends_left = int(params["messages"])
        modem.sim.out_of_credit_code = int(params["code"])
    elif fault is Fault.HANG:
        modem.hung = True
    elif fault is Fault.BOOT_NOISE:
        modem.boot_noise()


def lift_fault(modem: VirtualModem, fault: Fault) -> None:
    """Undo what `apply_fault` changed: the SIM unlocked, stores with room, credit, answers."""
    if fault is Fault.PIN_LOCKED:
        modem.sim.pin_state, modem.sim.pin_attempts = PinState.READY, 3
    elif fault is Fault.STORAGE_FULL:
        for store in modem.stores.values():
            store.full = False
    elif fault is Fault.BALANCE:
        modem.sim.sends_left = None
    elif fault in (Fault.HANG, Fault.HANG_AFTER_PDU):
        modem.hung = False


def check_command_error(faults: dict[Fault, dict[str, Any]], name: str) -> None:
    """The `command_error` fault: this command answers ``+CMS ERROR`` (`count` times)."""
    failing = faults.get(Fault.COMMAND_ERROR)
    if failing is None or name.upper() != str(failing["command"]).upper():
        return
    if failing["count"] is not None:
        failing["count"] -= 1
        if failing["count"] <= 0:
            faults.pop(Fault.COMMAND_ERROR)
    raise AtFailure("CMS", int(failing["code"]))
