"""The AT protocol layer: a sans-I/O core (`core.py`) and an asyncio driver for one modem.

Driver API (all coroutines unless noted; every wait is bounded):

    modem = Modem(port, name="m1", pin=None, profile=None, baudrate=115200,
                  poll_interval=30.0, sweep_interval=60.0,
                  reconnect_delays=(0.2, 0.5, 1, 2, 5, 10, 30), timing=Timing())
    await modem.open()                 # OSError / serial.SerialException if the port won't open
    await modem.initialise()           # PinError (PIN tried once, never again), AtTimeout, CmeError
    info = await modem.identify()      # ModemInfo: imei, imsi, iccid, msisdn, operator, signal...
    refs = await modem.send(parts)     # pdu.SubmitPart list (or hex strings) -> [message refs]
        # raises CmsError/CmeError/CommandError (.code, .meaning, .error_class, .references)
        # or SendAmbiguous (.references of the parts before the one in doubt), AtTimeout,
        # ModemDisconnected
    async for event in modem.events(): # InboundSms, StatusReport, UssdReply, SignalChanged,
        ...                            # RegistrationChanged, Disconnected, Reconnected, ReconnectFailed,
                                       # Unresponsive, Responsive
    await modem.acknowledge(event)     # after storing an InboundSms/StatusReport durably:
                                       # AT+CMGD (or AT+CNMA for +CMT where the profile needs it)
    text = await modem.ussd("*100#")
    await modem.sweep()                # AT+CMGL=4 over all stores now (also runs periodically)
    await modem.execute("signal") / await modem.query("signal")   # any command of COMMANDS
    await modem.reconnect(); await modem.close()
    modem.state (ModemState), modem.profile (ModemProfile), modem.info (last ModemInfo)

The modem's parts, each an object usable and tested alone: `modem.channel` (`Channel`: port,
lock, command exchange), `modem.setup` (known state, PIN, identity), `modem.sending`
(``AT+CMGS``), `modem.inbound` (reads, sweeps, deletes), `modem.health` (signal,
registration, USSD).
"""

from .commands import COMMANDS, Command, StoredPdu, StoreUsage, csq_to_bars, csq_to_dbm
from .channel import Channel, mask_secrets
from .core import (NEED_DATA, AtConnection, Echo, FinalResult, InfoLine, Noise, Prompt,
                   ProtocolError, Urc)
from .driver import Modem, ModemState
from .errors import (AtError, AtTimeout, CmeError, CmsError, CommandError, ErrorClass,
                     ModemDisconnected, PinError, SendAmbiguous)
from .events import (Disconnected, InboundSms, ModemEvent, ModemInfo, ReconnectFailed,
                     Reconnected, RegistrationChanged, Responsive, SignalChanged, StatusReport,
                     Unresponsive, UssdReply)
from .profiles import PROFILES, ModemProfile, detect_profile, get_profile
from .setup import PinMemory
from .timing import Timing

__all__ = [
    "COMMANDS", "Command", "StoredPdu", "StoreUsage", "csq_to_bars", "csq_to_dbm",
    "NEED_DATA", "AtConnection", "Echo", "FinalResult", "InfoLine", "Noise", "Prompt",
    "ProtocolError", "Urc",
    "Channel", "Modem", "ModemState", "mask_secrets",
    "AtError", "AtTimeout", "CmeError", "CmsError", "CommandError", "ErrorClass",
    "ModemDisconnected", "PinError", "SendAmbiguous",
    "Disconnected", "InboundSms", "ModemEvent", "ModemInfo", "ReconnectFailed", "Reconnected",
    "RegistrationChanged", "Responsive", "SignalChanged", "StatusReport", "Unresponsive", "UssdReply",
    "PROFILES", "ModemProfile", "detect_profile", "get_profile", "PinMemory", "Timing",
]
