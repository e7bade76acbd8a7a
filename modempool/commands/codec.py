"""`modempool pdu encode|decode`: the SMS codec, no modem needed."""

from __future__ import annotations

import click

from modempool.commands.output import echo_json_as_given


def _pdu_validity(value: str | None):
    """'90m', '12h', '3d', '2w' or plain minutes -> timedelta (modempool.when's reading)."""
    from modempool.when import InvalidTime, parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except InvalidTime as error:
        raise click.BadParameter(str(error), param_hint="--validity") from None


@click.group("pdu")
def pdu_group() -> None:
    """Encode and decode SMS PDUs (TS 23.040), no modem needed."""


@pdu_group.command("encode")
@click.argument("to")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (see docs/pdu.md).")
@click.option("--alphabet", type=click.Choice(["auto", "gsm7", "ucs2", "8bit"]), default="auto",
              show_default=True, help="Force an alphabet; auto picks GSM-7, national tables or UCS2.")
@click.option("--16bit-ref", "ref16", is_flag=True, help="16-bit concatenation reference (IEI 0x08).")
@click.option("--report", is_flag=True, help="Request a status report.")
@click.option("--reference", type=int, default=None, help="Concatenation reference (default: random).")
@click.option("--smsc", default=None, help="SMSC number to put in front (default: the modem's).")
@click.option("--validity", default=None, help="Relative validity period: 90m, 12h, 3d, 2w.")
@click.option("--flash", is_flag=True, help="Flash message (class 0).")
@click.option("--class", "message_class", type=click.IntRange(0, 3), default=None, help="Message class 0-3.")
@click.option("--hex-data", is_flag=True, help="TEXT is hex octets, sent as 8-bit data.")
def pdu_encode(to, text, as_json, alphabet, ref16, report, reference, smsc, validity, flash,
               message_class, hex_data) -> None:
    """Encode TEXT to TO as SMS-SUBMIT part(s): hex for AT+CMGS and the TPDU length."""
    from pdu import PduError, encode_submit, parts_needed, split_into_parts

    payload: str | bytes = text
    if hex_data:
        try:
            payload = bytes.fromhex(text)
        except ValueError:
            raise click.BadParameter("not hex", param_hint="TEXT")
    try:
        cost = parts_needed(payload, alphabet=alphabet, ref16=ref16)
        texts = split_into_parts(payload, alphabet=alphabet, ref16=ref16)
        parts = encode_submit(to, payload, alphabet=alphabet, ref16=ref16, status_report=report,
                              reference=reference, smsc=smsc, validity=_pdu_validity(validity),
                              message_class=0 if flash else message_class)
    except PduError as exc:
        raise click.ClickException(str(exc))
    if as_json:
        echo_json_as_given({
            "to": to, "alphabet": cost.alphabet.value,
            "national": {"locking": cost.national[0], "single": cost.national[1]},
            "reference": parts[0].reference, "ref16": ref16, "total": len(parts),
            "units": cost.units, "units_per_part": cost.units_per_part, "chars_left": cost.chars_left,
            "parts": [{"seq": p.seq, "text": t, "tpdu_length": p.tpdu_length, "hex": p.hex}
                      for p, t in zip(parts, texts)],
        })
        return
    national = f" national={cost.national[0]}/{cost.national[1]}" if any(cost.national) else ""
    click.echo(f"{len(parts)} part(s), {cost.alphabet.value}{national}, {cost.units} units, "
               f"{cost.chars_left} left in the last part"
               + (f", reference {parts[0].reference}" if parts[0].reference is not None else ""))
    for p in parts:
        click.echo(f"part {p.seq}/{p.total}  AT+CMGS={p.tpdu_length}")
        click.echo(p.hex)


@pdu_group.command("decode")
@click.argument("hex_pdu", metavar="HEX")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (see docs/pdu.md).")
@click.option("--no-smsc", is_flag=True, help="HEX has no SMSC part (starts at the first octet).")
def pdu_decode(hex_pdu, as_json, no_smsc) -> None:
    """Decode an SMS-DELIVER, SMS-SUBMIT or SMS-STATUS-REPORT PDU."""
    from pdu import PduError, decode_pdu, to_json

    try:
        msg = decode_pdu(hex_pdu, smsc=not no_smsc)
    except PduError as exc:
        raise click.ClickException(str(exc))
    data = to_json(msg)
    if as_json:
        echo_json_as_given(data)
        return
    for key, value in data.items():
        if value in (None, (), [], "", False) and key not in ("text",):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        click.echo(f"{key:>24}: {value}")


COMMANDS = [pdu_group]


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    for command in COMMANDS:
        group.add_command(command)
