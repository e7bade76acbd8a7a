"""Errors of the AT layer, with the meaning and class of every ``+CME``/``+CMS`` code.

The class tells the pool what to do with the message that met the error:

- PERMANENT: this message cannot go out (unassigned number, invalid destination, bad PDU); do not
  retry it on any SIM.
- TEMPORARY: the network or service centre is busy; retry later, the same SIM is fine.
- SIM_OR_MODEM: this SIM or modem cannot send now (no network, SIM failure, PIN, barred SIM);
  retry on another SIM and look at this one.
- AMBIGUOUS: the PDU was written and no answer came; the message may or may not have gone out.

Sources: TS 27.007 §9.2 (+CME), TS 27.005 §3.2.5 (+CMS 300-500) and TS 24.011 / TS 23.040
(+CMS 0-255: RP-cause and TP-FCS values).
"""

from __future__ import annotations

from enum import Enum


class ErrorClass(Enum):
    PERMANENT = "permanent"
    TEMPORARY = "temporary"
    SIM_OR_MODEM = "sim-or-modem"
    AMBIGUOUS = "ambiguous"


P, T, S = ErrorClass.PERMANENT, ErrorClass.TEMPORARY, ErrorClass.SIM_OR_MODEM

# TS 27.005 §3.2.5 <err>: 0..127 RP-cause (TS 24.011 E.2), 128..255 TP-FCS (TS 23.040 9.2.3.22),
# 300..500 errors of the ME/TA.
CMS_ERRORS: dict[int, tuple[str, ErrorClass]] = {
    1: ("unassigned (unallocated) number", P),
    8: ("operator determined barring", S),
    10: ("call barred", S),
    17: ("network failure", T),
    21: ("short message transfer rejected", S),
    22: ("memory capacity exceeded", T),
    27: ("destination out of service", T),
    28: ("unidentified subscriber", P),
    29: ("facility rejected", S),
    30: ("unknown subscriber", P),
    38: ("network out of order", T),
    41: ("temporary failure", T),
    42: ("congestion", T),
    47: ("resources unavailable, unspecified", T),
    50: ("requested facility not subscribed", S),
    69: ("requested facility not implemented", S),
    81: ("invalid short message transfer reference value", T),
    95: ("invalid message, unspecified", P),
    96: ("invalid mandatory information", P),
    97: ("message type non-existent or not implemented", P),
    98: ("message not compatible with short message protocol state", T),
    99: ("information element non-existent or not implemented", P),
    111: ("protocol error, unspecified", T),
    127: ("interworking, unspecified", T),
    128: ("telematic interworking not supported", P),
    129: ("short message type 0 not supported", P),
    130: ("cannot replace short message", P),
    143: ("unspecified TP-PID error", P),
    144: ("data coding scheme (alphabet) not supported", P),
    145: ("message class not supported", P),
    159: ("unspecified TP-DCS error", P),
    160: ("command cannot be actioned", P),
    161: ("command unsupported", P),
    175: ("unspecified TP-Command error", P),
    176: ("TPDU not supported", P),
    192: ("SC busy", T),
    193: ("no SC subscription", S),
    194: ("SC system failure", T),
    195: ("invalid SME address", P),
    196: ("destination SME barred", P),
    197: ("SM rejected, duplicate SM", P),
    198: ("TP-VPF not supported", P),
    199: ("TP-VP not supported", P),
    208: ("(U)SIM SMS storage full", S),
    209: ("no SMS storage capability in (U)SIM", S),
    210: ("error in MS", S),
    211: ("memory capacity exceeded", S),
    212: ("(U)SIM application toolkit busy", T),
    213: ("(U)SIM data download error", S),
    255: ("unspecified error cause", T),
    300: ("ME failure", S),
    301: ("SMS service of ME reserved", T),
    302: ("operation not allowed", S),
    303: ("operation not supported", S),
    304: ("invalid PDU mode parameter", P),
    305: ("invalid text mode parameter", P),
    310: ("(U)SIM not inserted", S),
    311: ("(U)SIM PIN required", S),
    312: ("PH-(U)SIM PIN required", S),
    313: ("(U)SIM failure", S),
    314: ("(U)SIM busy", T),
    315: ("(U)SIM wrong", S),
    316: ("(U)SIM PUK required", S),
    317: ("(U)SIM PIN2 required", S),
    318: ("(U)SIM PUK2 required", S),
    320: ("memory failure", S),
    321: ("invalid memory index", S),
    322: ("memory full", S),
    330: ("SMSC address unknown", S),
    331: ("no network service", S),
    332: ("network timeout", T),
    340: ("no +CNMA acknowledgement expected", S),
    500: ("unknown error", T),
}

# TS 27.007 §9.2.1 (general), §9.2.2 (GPRS/EPS) <err> values.
CME_ERRORS: dict[int, tuple[str, ErrorClass]] = {
    0: ("phone failure", S),
    1: ("no connection to phone", S),
    2: ("phone adaptor link reserved", T),
    3: ("operation not allowed", S),
    4: ("operation not supported", S),
    5: ("PH-SIM PIN required", S),
    6: ("PH-FSIM PIN required", S),
    7: ("PH-FSIM PUK required", S),
    10: ("SIM not inserted", S),
    11: ("SIM PIN required", S),
    12: ("SIM PUK required", S),
    13: ("SIM failure", S),
    14: ("SIM busy", S),
    15: ("SIM wrong", S),
    16: ("incorrect password", S),
    17: ("SIM PIN2 required", S),
    18: ("SIM PUK2 required", S),
    20: ("memory full", S),
    21: ("invalid index", S),
    22: ("not found", S),
    23: ("memory failure", S),
    24: ("text string too long", P),
    25: ("invalid characters in text string", P),
    26: ("dial string too long", P),
    27: ("invalid characters in dial string", P),
    30: ("no network service", S),
    31: ("network timeout", T),
    32: ("network not allowed - emergency calls only", S),
    40: ("network personalization PIN required", S),
    41: ("network personalization PUK required", S),
    42: ("network subset personalization PIN required", S),
    43: ("network subset personalization PUK required", S),
    44: ("service provider personalization PIN required", S),
    45: ("service provider personalization PUK required", S),
    46: ("corporate personalization PIN required", S),
    47: ("corporate personalization PUK required", S),
    48: ("hidden key required", S),
    49: ("EAP method not supported", S),
    50: ("incorrect parameters", P),
    51: ("command implemented but currently disabled", S),
    52: ("command aborted by user", T),
    53: ("not attached to network due to MT functionality restrictions", S),
    54: ("modem not allowed - MT restricted to emergency calls only", S),
    55: ("operation not allowed because of MT functionality restrictions", S),
    56: ("fixed dial number only allowed", P),
    57: ("temporarily out of service due to other MT usage", T),
    58: ("language/alphabet not supported", P),
    59: ("unexpected data value", P),
    60: ("system failure", T),
    61: ("data missing", P),
    62: ("call barred", S),
    63: ("message waiting indication subscription failure", S),
    100: ("unknown", T),
    103: ("illegal MS", S),
    106: ("illegal ME", S),
    107: ("GPRS services not allowed", S),
    108: ("GPRS services and non-GPRS services not allowed", S),
    111: ("PLMN not allowed", S),
    112: ("location area not allowed", S),
    113: ("roaming not allowed in this location area", S),
    114: ("GPRS services not allowed in this PLMN", S),
    115: ("no suitable cells in tracking area", S),
    122: ("congestion", T),
    132: ("service option not supported", S),
    133: ("requested service option not subscribed", S),
    134: ("service option temporarily out of order", T),
    148: ("unspecified GPRS error", T),
    149: ("PDP authentication failure", S),
    150: ("invalid mobile class", S),
}


def _lookup(table: dict[int, tuple[str, ErrorClass]], code: int) -> tuple[str, ErrorClass]:
    if code in table:
        return table[code]
    if code >= 512:
        return (f"manufacturer specific error {code}", T)
    return (f"reserved error code {code}", T)


class AtError(Exception):
    """Any failure of the AT layer; `.error_class` says what the pool should do about it."""

    code: int | None = None
    meaning: str = "error"
    error_class: ErrorClass = ErrorClass.SIM_OR_MODEM

    def __init__(self, meaning: str | None = None, *, error_class: ErrorClass | None = None) -> None:
        if meaning is not None:
            self.meaning = meaning
        if error_class is not None:
            self.error_class = error_class
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.meaning


class _CodedError(AtError):
    prefix = ""
    table: dict[int, tuple[str, ErrorClass]] = {}

    def __init__(self, code: int, meaning: str | None = None) -> None:
        self.code = code
        known_meaning, self.error_class = _lookup(self.table, code)
        super().__init__(meaning or known_meaning)

    def __str__(self) -> str:
        return f"{self.prefix} ERROR {self.code}: {self.meaning}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.meaning!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.code == self.code  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.code))


class CmeError(_CodedError):
    """``+CME ERROR: <n>``: an error of the mobile equipment (TS 27.007 §9.2)."""

    prefix = "+CME"
    table = CME_ERRORS


class CmsError(_CodedError):
    """``+CMS ERROR: <n>``: an error of the message service (TS 27.005 §3.2.5)."""

    prefix = "+CMS"
    table = CMS_ERRORS


class CommandError(AtError):
    """A plain ``ERROR`` (or ``NO CARRIER``...): the modem refused the command without a code."""

    def __init__(self, result: str = "ERROR", command: str = "") -> None:
        self.result = result
        self.command = command
        super().__init__(f"{command or 'command'} answered {result}", error_class=ErrorClass.SIM_OR_MODEM)


class AtTimeout(AtError):
    """The modem did not answer a command in time (a hung modem)."""

    error_class = ErrorClass.SIM_OR_MODEM


class ModemDisconnected(AtError):
    """The serial port went away (unplugged, I/O error, end of file)."""

    error_class = ErrorClass.SIM_OR_MODEM


class PinError(AtError):
    """The SIM wants a PIN we do not have, refused ours, or wants a PUK. Never retried."""

    error_class = ErrorClass.SIM_OR_MODEM


class SendAmbiguous(AtError):
    """The PDU of part `len(references)` was written and no result came: it may have gone out.

    `references` are the message references of the parts that did succeed before it.
    """

    error_class = ErrorClass.AMBIGUOUS

    def __init__(self, meaning: str = "no answer after the PDU was written",
                 references: tuple[int, ...] = ()) -> None:
        self.references = tuple(references)
        super().__init__(meaning)


def error_from_result(line: str) -> AtError | None:
    """The error a final result line stands for, or None for ``OK``/``CONNECT``."""
    text = line.strip()
    upper = text.upper()
    for prefix, cls in (("+CME ERROR:", CmeError), ("+CMS ERROR:", CmsError)):
        if upper.startswith(prefix):
            detail = text[len(prefix):].strip()
            try:
                return cls(int(detail))
            except ValueError:  # verbose mode (AT+CMEE=2) gives text instead of a number
                return cls(_code_for_text(cls.table, detail), detail or None)
    if upper in ("OK", "CONNECT") or upper.startswith("CONNECT "):
        return None
    return CommandError(text)


def _code_for_text(table: dict[int, tuple[str, ErrorClass]], text: str) -> int:
    wanted = text.lower()
    for code, (meaning, _) in table.items():
        if meaning.lower() == wanted:
            return code
    return 500 if table is CMS_ERRORS else 100
