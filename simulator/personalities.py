"""Vendor personalities of simulated modems, as data.

Each entry describes one family of hardware found in 短信猫 banks: what it says about itself
(`AT+CGMI`/`CGMM`/`CGMR`/`ATI`), its defaults (CNMI, message stores and their capacities), the
unsolicited codes it prints at boot and on signal changes, and its habits (how it answers the
ICCID query, whether it echoes the PDU line). Written from the vendors' published AT manuals;
the interpreter in `simulator/modem.py` reads these fields and never tests a vendor's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class Personality:
    """One vendor family: identity strings, defaults, quirks and timings."""

    name: str
    manufacturer: str
    model: str
    revision: str
    imei_tac: str  # first 8 digits of the IMEI (type allocation code)
    ati_lines: tuple[str, ...]
    default_cnmi: tuple[int, int, int, int, int]
    stores: dict[str, int]  # message store -> capacity, in the order AT+CPMS=? lists them
    default_store: str
    boot_urcs: tuple[str, ...]  # vendor noise printed by the boot_noise fault and AT+CFUN=1,1
    # How the ICCID is asked for and printed: command -> reply prefix ("" = bare digits).
    iccid_commands: dict[str, str] = field(default_factory=lambda: {"+CCID": "+CCID: "})
    signal_urc: str | None = None  # e.g. "^RSSI:{rssi}" printed when the signal level changes
    mode_urc: str | None = None  # e.g. "^MODE:3,2" printed after registration
    # Printed by the modem itself at every power-on (bank start, replug): {rssi}, {imei}, {cpin}.
    power_on_urcs: tuple[str, ...] = ()
    # Vendor URCs that come now and then while the modem idles: (line, mean seconds between
    # two). "{signal}" as the line means "the signal level drifts", shown by `signal_urc`.
    periodic_urcs: tuple[tuple[str, float], ...] = ()
    # The vendor's switch for its own URCs (signal, mode, periodic): AT^CURC, AT+WIND... and
    # its power-on value (0: silent until the client turns them on).
    urc_switch: str | None = None
    urc_switch_default: int = 1
    # TS 27.005 3.4.4: <service> of AT+CSMS at power-on (1: +CMT/+CDS wait for AT+CNMA), and
    # how long the ME waits for AT+CNMA before it answers the network with an error (within
    # the network's own RP-ACK timer, TR2M of TS 24.011).
    default_csms: int = 0
    ack_timeout: float = 15.0
    echo_pdu_line: bool = True  # whether the PDU typed after the prompt is echoed
    prompt: bytes = b"\r\n> "
    cms_on_unregistered: int = 331
    extra_commands: tuple[str, ...] = ()  # vendor commands answered OK (listed by AT+CLAC)
    # Typical timings (field reports: a GSM module takes ~3-5 s per SMS), used when a bank is
    # started with realistic=True; otherwise the simulator answers at once.
    command_latency: float = 0.03  # seconds before each final result
    sms_latency: float = 3.0  # seconds a send takes before +CMGS
    ussd_dcs: int = 15
    # Firmware habits seen in the field: commands whose answer comes without the final OK
    # (old Wavecom: "+CPIN: READY" and nothing after it), and how a PDU line is printed in
    # +CMGR/+CMGL/+CMT/+CDS ('"{pdu}"': quoted, ' {pdu} ': padded with blanks).
    unterminated_replies: tuple[str, ...] = ()
    pdu_line: str = "{pdu}"


_WAVECOM = Personality(
    name="wavecom",
    manufacturer="WAVECOM MODEM",
    model="MULTIBAND  900E  1800",
    revision="R7.46.0.201105141030.FASTRACK 2406",
    imei_tac="35172700",
    ati_lines=("WAVECOM MODEM", "MULTIBAND  900E  1800"),
    default_cnmi=(0, 1, 0, 0, 0),
    stores={"SM": 30, "ME": 99},
    default_store="SM",
    boot_urcs=("+WIND: 3", "+WIND: 1", "+WIND: 7", "+WIND: 4"),
    # Wavecom AT manual, +WIND: 1 SIM inserted, 3 ready for AT commands except
    # phonebook/SMS, 4 ready for all AT commands (printed when the +WIND level allows).
    power_on_urcs=("+WIND: 1", "+WIND: 3", "+WIND: 4"),
    urc_switch="+WIND", urc_switch_default=255,
    extra_commands=("+WIND", "+WOPEN", "+WMBS"),
    command_latency=0.05, sms_latency=4.0,
)


PERSONALITIES: dict[str, Personality] = {
    p.name: p
    for p in (
        _WAVECOM,
        replace(
            # Older Fastrack firmware (Q2403): answers AT+CPIN? without OK and quotes PDU
            # lines, as python-gsmmodem's Wavecom workaround and field reports describe.
            _WAVECOM, name="wavecom-q2403", model="900E",
            revision="R6.54.0.200407071437.FASTRACK 2403", ati_lines=("WAVECOM MODEM", "900E"),
            command_latency=0.08, sms_latency=5.0,
            unterminated_replies=("+CPIN",), pdu_line='"{pdu}"',
        ),
        Personality(
            name="simcom",
            manufacturer="SIMCOM_Ltd",
            model="SIMCOM_SIM800",
            revision="Revision:1308B06SIM800M32",
            imei_tac="86545702",
            ati_lines=("SIM800 R13.08",),
            default_cnmi=(1, 1, 0, 0, 0),
            stores={"SM": 50, "ME": 50},
            default_store="SM",
            boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
            iccid_commands={"+CCID": ""},
            extra_commands=("+CSPN", "+DDET", "+CBAND", "+SPIC"),
        ),
        Personality(
            name="huawei",
            manufacturer="huawei",
            model="E1752",
            revision="11.126.03.01.314",
            imei_tac="35424502",
            ati_lines=("Manufacturer: huawei", "Model: E1752", "Revision: 11.126.03.01.314",
                       "IMEI: {imei}", "+GCAP: +CGSM,+DS,+ES"),
            default_cnmi=(0, 0, 0, 0, 0),
            stores={"SM": 50, "ME": 255},
            default_store="SM",
            boot_urcs=("^BOOT:20341674,0,0,0,75", "^RSSI:{rssi}", "^MODE:5,4"),
            iccid_commands={"^ICCID": "^ICCID: ", "+CCID": "+CCID: "},
            signal_urc="^RSSI:{rssi}",
            mode_urc="^MODE:5,4",
            # E-series sticks report signal changes (^RSSI), mode changes (^MODE) and repeat
            # ^BOOT while idle, until AT^CURC=0.
            periodic_urcs=(("{signal}", 20.0), ("^MODE:5,4", 60.0),
                           ("^BOOT:20341674,0,0,0,75", 45.0)),
            urc_switch="^CURC",
            extra_commands=("^CURC", "^SYSINFO", "^USSDMODE", "^CVOICE", "^HWVER", "^CPIN"),
            command_latency=0.05, sms_latency=2.5,
        ),
        Personality(
            name="zte",
            manufacturer="ZTE INCORPORATED",
            model="MF190",
            revision="BD_MF190V1.0.0B03",
            imei_tac="35895104",
            ati_lines=("Manufacturer: ZTE INCORPORATED", "Model: MF190",
                       "Revision: BD_MF190V1.0.0B03", "IMEI: {imei}"),
            default_cnmi=(1, 1, 0, 2, 0),
            stores={"SM": 20, "ME": 100},
            default_store="ME",
            boot_urcs=("+ZUSIMR:2", "+ZPASR: \"GSM\""),
            iccid_commands={"+ZGETICCID": "+ZGETICCID: ", "+CCID": "+CCID: "},
            extra_commands=("+ZPAS", "+ZSNT", "+ZOPRT", "+ZCDRUN"),  # gammu sends AT+ZCDRUN=8
        ),
        Personality(
            name="quectel",
            manufacturer="Quectel",
            model="EC25",
            revision="EC25EFAR06A06M4G",
            imei_tac="86667803",
            ati_lines=("Quectel", "EC25", "Revision: EC25EFAR06A06M4G"),
            default_cnmi=(2, 1, 0, 0, 0),
            stores={"SM": 50, "ME": 255},
            default_store="ME",
            boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"),
            # EC25 AT manual: RDY at start-up, then +QIND: SMS DONE / PB DONE when the SMS and
            # phonebook are initialised; +QIND: "csq" on signal changes after
            # AT+QINDCFG="csq",1 (off at power-on).
            power_on_urcs=("RDY", "+CFUN: 1", "+CPIN: {cpin}", "+QUSIM: 1", "+QIND: SMS DONE",
                           "+QIND: PB DONE"),
            signal_urc='+QIND: "csq",{rssi},99',
            urc_switch="+QINDCFG", urc_switch_default=0,
            iccid_commands={"+QCCID": "+QCCID: ", "+CCID": "+CCID: "},
            extra_commands=("+QCFG", "+QINDCFG", "+QURCCFG", "+QPINC"),
            command_latency=0.02, sms_latency=2.0,
        ),
    )
}


def personality(name: str) -> Personality:
    """Look up a personality by name, with an error that lists the choices."""
    try:
        return PERSONALITIES[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown modem personality {name!r}; choose one of {', '.join(PERSONALITIES)}"
        ) from None
