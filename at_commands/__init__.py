"""The AT protocol layer: a sans-I/O core (`core.py`) and an asyncio driver for one modem.

    from at_commands import Modem
    modem = Modem("/dev/ttyUSB0", name="m1", pin=None, profile=None)
    await modem.open(); await modem.initialise(); info = await modem.identify()
    refs = await modem.send(parts)          # parts from pdu.encode_submit()
    async for event in modem.events(): ...  # InboundSms, StatusReport, Disconnected, ...
"""

from .commands import COMMANDS, Command, StoredPdu, StoreUsage, csq_to_bars, csq_to_dbm
from .core import (NEED_DATA, AtConnection, Echo, FinalResult, InfoLine, Noise, Prompt,
                   ProtocolError, Urc)
from .driver import Modem, ModemState, mask_secrets
from .errors import (AtError, AtTimeout, CmeError, CmsError, CommandError, ErrorClass,
                     ModemDisconnected, PinError, SendAmbiguous)
from .events import (Disconnected, InboundSms, ModemEvent, ModemInfo, ReconnectFailed,
                     Reconnected, Responsive, SignalChanged, StatusReport, Unresponsive,
                     UssdReply)
from .profiles import PROFILES, ModemProfile, detect_profile, get_profile

__all__ = [
    "COMMANDS", "Command", "StoredPdu", "StoreUsage", "csq_to_bars", "csq_to_dbm",
    "NEED_DATA", "AtConnection", "Echo", "FinalResult", "InfoLine", "Noise", "Prompt",
    "ProtocolError", "Urc",
    "Modem", "ModemState", "mask_secrets",
    "AtError", "AtTimeout", "CmeError", "CmsError", "CommandError", "ErrorClass",
    "ModemDisconnected", "PinError", "SendAmbiguous",
    "Disconnected", "InboundSms", "ModemEvent", "ModemInfo", "ReconnectFailed", "Reconnected",
    "Responsive", "SignalChanged", "StatusReport", "Unresponsive", "UssdReply",
    "PROFILES", "ModemProfile", "detect_profile", "get_profile",
]
