"""pdu: a pure SMS codec (3GPP TS 23.040 / TS 23.038), no I/O.

Encode SMS-SUBMIT parts for AT+CMGS, decode whatever a modem reads, split and reassemble
long messages, and price a text before sending it.
"""

from .alphabet import Alphabet
from .dcs import MessageWaiting
from .decode import decode_pdu
from .encode import encode_deliver, encode_status_report, encode_submit
from .errors import PduError
from .messages import Concat, Deliver, StatusReport, Submit, SubmitPart, to_json
from .national import Language
from .reassembly import Incomplete, Reassembler
from .split import Cost, parts_needed, split_into_parts

__all__ = [
    "PduError", "Alphabet", "SubmitPart", "Concat", "Deliver", "Submit", "StatusReport", "Cost",
    "MessageWaiting", "Incomplete", "Language",
    "encode_submit", "encode_deliver", "encode_status_report", "decode_pdu",
    "split_into_parts", "parts_needed", "Reassembler", "to_json",
]
