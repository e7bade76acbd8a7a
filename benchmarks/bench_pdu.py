"""Codec speed, side by side with python-gsmmodem-new and python-messaging: messages per second.

Run: python benchmarks/bench_pdu.py [--seconds 0.5]   (pip install -e '.[bench]')
(a) encode a 500-character Chinese text into its SMS-SUBMIT parts (hex)
(b) encode a 160-character GSM-7 text (hex)
(c) decode a GSM-7 SMS-DELIVER
(d) decode a UCS2 SMS-DELIVER part with a concatenation header
"""

from __future__ import annotations

import argparse
import platform
import time

import gsmmodem.pdu as peer
from messaging.sms import SmsDeliver, SmsSubmit

import pdu

TO = "+8613800138000"
CHINESE_500 = ("模块化的短信猫设备池可以同时驱动多张SIM卡发送和接收短信，" * 20)[:500]
GSM_160 = ("Your verification code is 482913. It expires in 10 minutes. "
           "Do not share it with anyone. Reply STOP to opt out. Thanks, ModemPool! " * 2)[:160]
assert len(CHINESE_500) == 500 and len(GSM_160) == 160
GSM_DELIVER = pdu.encode_deliver("+8613912345678", GSM_160)[0]
UCS2_PART = pdu.encode_deliver("+8613912345678", CHINESE_500, reference=42)[1]


def rate(fn, seconds: float) -> float:
    """Calls per second of fn() over about `seconds`."""
    n, batch = 0, 1
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed
        batch *= 2


def best_rates(*codecs, seconds: float, rounds: int = 9) -> list[float]:
    """Best of several alternating rounds, so a busy machine hurts every side alike."""
    best = [0.0] * len(codecs)
    for _ in range(rounds):
        for index, fn in enumerate(codecs):
            best[index] = max(best[index], rate(fn, seconds / rounds))
    return best


def messaging_submit(text: str) -> list[str]:
    sms = SmsSubmit(TO, text)
    sms.ref = 1
    return [part.pdu for part in sms.to_pdu()]


def cases():
    return [
        ("(a) encode 500-char Chinese -> parts",
         lambda: [p.hex for p in pdu.encode_submit(TO, CHINESE_500, reference=1)],
         lambda: [str(p) for p in peer.encodeSmsSubmitPdu(TO, CHINESE_500, reference=1)],
         lambda: messaging_submit(CHINESE_500)),
        ("(b) encode 160-char GSM-7",
         lambda: [p.hex for p in pdu.encode_submit(TO, GSM_160)],
         lambda: [str(p) for p in peer.encodeSmsSubmitPdu(TO, GSM_160)],
         lambda: messaging_submit(GSM_160)),
        ("(c) decode GSM-7 SMS-DELIVER",
         lambda: pdu.decode_pdu(GSM_DELIVER),
         lambda: peer.decodeSmsPdu(GSM_DELIVER),
         lambda: SmsDeliver(GSM_DELIVER).text),
        ("(d) decode UCS2 part with concat header",
         lambda: pdu.decode_pdu(UCS2_PART),
         lambda: peer.decodeSmsPdu(UCS2_PART),
         lambda: SmsDeliver(UCS2_PART).text),
    ]


def check_same_answers() -> None:
    """Both libraries must agree on what they are timed on, or the figures mean nothing."""
    assert pdu.decode_pdu(GSM_DELIVER).text == peer.decodeSmsPdu(GSM_DELIVER)["text"] == GSM_160
    assert pdu.decode_pdu(UCS2_PART).text == peer.decodeSmsPdu(UCS2_PART)["text"]
    ours = pdu.encode_submit(TO, CHINESE_500, reference=1)
    theirs = peer.encodeSmsSubmitPdu(TO, CHINESE_500, reference=1, requestStatusReport=False)
    assert len(ours) == len(theirs) == len(messaging_submit(CHINESE_500)) == 8
    assert SmsDeliver(GSM_DELIVER).text == GSM_160
    assert SmsDeliver(UCS2_PART).text == pdu.decode_pdu(UCS2_PART).text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="time per figure (split over 9 alternating rounds)")
    args = parser.parse_args()
    check_same_answers()
    print(f"python {platform.python_version()} on {platform.machine()}; "
          f"best of 9 alternating rounds in {args.seconds}s per figure")
    print(f"{'case':42} {'modempool':>10} {'gsmmodem':>10} {'messaging':>10} {'ours/gsmmodem':>14}"
          f" {'ours/messaging':>15}   (msg/s)")
    for name, *codecs in cases():
        ours, gsmmodem, messaging = best_rates(*codecs, seconds=args.seconds)
        print(f"{name:42} {ours:10,.0f} {gsmmodem:10,.0f} {messaging:10,.0f} "
              f"{ours / gsmmodem:13.1f}x {ours / messaging:14.1f}x")


if __name__ == "__main__":
    main()
