"""Vendor profiles as data: what differs between a Wavecom, a SIMCom, a Huawei, a ZTE, a Quectel.

The driver never asks "which vendor is this?"; it reads the profile. `detect_profile()` picks one
from the ``AT+CGMI`` answer when the user did not name one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from .urc import UrcKind, UrcSpec


@dataclass(frozen=True, slots=True)
class ModemProfile:
    """How to drive one family of modems.

    - `echo`: leave echo on (``ATE1``) or turn it off (``ATE0``); the core copes with both.
    - `init_commands`: extra lines after the standard set-up (vendor URC switches...).
    - `new_message_routing`: the ``AT+CNMI`` line (TS 27.005 §3.4.1). ``mt=1`` stores and reports
      ``+CMTI``; ``mt=2`` delivers ``+CMT`` directly; ``ds=1`` ``+CDS``, ``ds=2`` ``+CDSI``.
      Reports go out directly (``ds=1``): a stored ``+CDSI`` costs ``AT+CMGR``/``AT+CMGD`` round
      trips that a busy sending modem pays between two messages.
    - `cnma_required`: ``+CMT``/``+CDS`` must be acknowledged with ``AT+CNMA`` (phase 2+,
      ``AT+CSMS=1``); the driver sends it when the consumer acknowledges the message.
    - `stores`: message stores to use and to sweep (the first receives new messages).
    - `reboot_markers`: URC lines that mean the modem restarted and lost our settings: the
      driver initialises it again.
    - `boot_noise` / `extra_urcs`: lines the modem prints on its own that mean nothing to us.
      Boot and status lines of every vendor here (RDY, ^BOOT, +WIND, +QIND, +ZPASR...) are
      already in `urc.URC_TABLE`, because they arrive before the vendor is known; these fields
      are for the rest (a site's odd firmware), so that such a line is not taken as the reply
      of the pending command.
    - `status_report_store`: the store ``+CDSI`` reports point to (TS 27.005 ``"SR"``); swept
      with `stores` when the modem lists it in its ``AT+CPMS=?`` answer (None: never).
    - `registration_reports`: the line that turns on ``+CREG`` URCs (``AT+CREG=2`` adds the
      location area and cell); None leaves registration to polling.
    - `ussd_packed_septets`: GSM 7-bit ``+CUSD`` text comes as hex of packed septets
      (Huawei E-series in IRA, or ``AT+CSCS="HEX"``) rather than as plain text.
    - `unterminated_replies`: commands (by `commands.COMMANDS` name) whose answer this firmware
      may leave without a final result code (old Wavecom: ``+CPIN: READY`` and no ``OK``); the
      answer is taken `unterminated_grace` seconds after its last information line.
    - `pin_retries_command`: how to ask the PIN attempts left (a `commands.COMMANDS` name);
      ``AT+CPINR`` is tried after it.
    - `timeouts`: per-command overrides (seconds) of `commands.COMMANDS`, by command name;
      ``"send"`` bounds the wait for the prompt, ``"send_result"`` the wait after the PDU.
    """

    name: str
    manufacturers: tuple[str, ...] = ()
    echo: bool = False
    init_commands: tuple[str, ...] = ()
    new_message_routing: str = "AT+CNMI=2,1,0,1,0"
    sms_service: int | None = None
    cnma_required: bool = False
    stores: tuple[str, ...] = ("SM",)
    reboot_markers: tuple[str, ...] = ("RDY", "START", "^SYSSTART")
    supports_cmms: bool = True
    status_report_store: str | None = "SR"
    registration_reports: str | None = "AT+CREG=2"
    ussd_packed_septets: bool = False
    iccid_command: str = "iccid"
    pin_retries_command: str = "pin_retries"
    boot_noise: tuple[str, ...] = ()
    extra_urcs: Mapping[str, UrcSpec] = field(default_factory=lambda: MappingProxyType({}))
    timeouts: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    boot_delay: float = 0.0  # seconds to let a freshly opened modem settle before the first AT
    unterminated_replies: tuple[str, ...] = ()
    unterminated_grace: float = 0.3

    def timeout(self, command: str, default: float) -> float:
        return self.timeouts.get(command, default)


def _urcs(*names: str, kind: UrcKind = UrcKind.VENDOR) -> Mapping[str, UrcSpec]:
    return MappingProxyType({name.upper(): UrcSpec(name, kind) for name in names})


PROFILES: dict[str, ModemProfile] = {
    profile.name: profile
    for profile in (
        ModemProfile("generic"),
        ModemProfile(
            "wavecom",
            manufacturers=("WAVECOM",),
            # Fastrack: +WIND reports boot phases; AT+WIND=0 would silence them but we keep them
            new_message_routing="AT+CNMI=2,1,0,1,0",
            stores=("SM",),
            supports_cmms=True,
            reboot_markers=("+WIND: 3",),  # "ready to process AT commands" after a reset
            # some firmware answers AT+CPIN? with "+CPIN: READY" and never sends OK
            unterminated_replies=("pin_status",),
        ),
        ModemProfile(
            "simcom",
            manufacturers=("SIMCOM",),
            new_message_routing="AT+CNMI=2,1,0,1,0",
            stores=("SM", "ME"),
            iccid_command="iccid",
            pin_retries_command="pin_retries_simcom",
        ),
        ModemProfile(
            "huawei",
            manufacturers=("HUAWEI",),
            # ^CURC=0 silences ^RSSI/^MODE/^DSFLOWRPT spam on the PC UI port
            init_commands=("AT^CURC=0",),
            new_message_routing="AT+CNMI=2,1,0,1,0",
            stores=("SM", "ME"),
            supports_cmms=False,
            iccid_command="iccid_huawei",
            pin_retries_command="pin_retries_huawei",
            ussd_packed_septets=True,  # E1550/E173 in IRA: "+CUSD: 0,\"D9775D0E...\",15"
        ),
        ModemProfile(
            "zte",
            manufacturers=("ZTE",),
            new_message_routing="AT+CNMI=2,1,0,1,0",
            stores=("SM", "ME"),
            supports_cmms=False,
            iccid_command="iccid_zte",
            extra_urcs=_urcs("+ZDONR", "+ZPASR", "+ZUSIMR", "+ZEND"),
        ),
        ModemProfile(
            "quectel",
            manufacturers=("QUECTEL",),
            new_message_routing="AT+CNMI=2,1,0,1,0",
            stores=("SM", "ME"),
            iccid_command="iccid_quectel",
            pin_retries_command="pin_retries_quectel",
            timeouts=MappingProxyType({"send_result": 120.0}),  # EC2x manual: CMGS up to 120 s
        ),
    )
}


def get_profile(name: str | None) -> ModemProfile:
    """The profile called `name` (``"generic"`` when None); KeyError lists the known names."""
    if name is None:
        return PROFILES["generic"]
    try:
        return PROFILES[name.lower()]
    except KeyError:
        raise KeyError(f"unknown modem profile {name!r}; known: {', '.join(PROFILES)}") from None


def detect_profile(manufacturer: str) -> ModemProfile:
    """The profile whose manufacturer name appears in the ``AT+CGMI`` answer, else generic."""
    upper = manufacturer.upper()
    for profile in PROFILES.values():
        if any(token in upper for token in profile.manufacturers):
            return profile
    return PROFILES["generic"]
