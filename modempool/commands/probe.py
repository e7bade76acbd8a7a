"""`modempool probe PORT`: open one modem and say who and how it is."""

from __future__ import annotations

import math

import click

from modempool.commands.output import echo_json_as_given


def _finite_wait(value: float) -> float:
    """--answer-wait: nan or inf pass click's range, yet a wait must end."""
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds")
    return value


@click.command("probe")
@click.argument("port")
@click.option("--pin", default=None, help="SIM PIN, entered once if the SIM asks (never retried).")
@click.option("--profile", "profile_name", default=None,
              help="Vendor profile (generic, wavecom, simcom, huawei, zte, quectel); default: detect.")
@click.option("--baud", default=115200, show_default=True, help="Baud rate.")
@click.option("--answer-wait", "answer_wait", type=click.FloatRange(min=0, min_open=True),
              callback=lambda ctx, param, value: _finite_wait(value), default=1.0, show_default=True, metavar="SECONDS",
              help="First wait for the modem's AT (then 3 and 10 times it): longer for a slow "
                   "modem, as [timing] answer_wait.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--send", "send_to", nargs=2, metavar="NUMBER TEXT", default=None,
              help="Send one SMS through this modem and print the part references.")
@click.option("--ussd", "ussd_code", default=None, metavar="CODE", help="USSD query, e.g. *100#.")
def probe(port, pin, profile_name, baud, answer_wait, as_json, send_to, ussd_code) -> None:
    """Open one modem on PORT, initialise it and print who and how it is.

    The smallest field test of a modem: identity (IMEI, IMSI, ICCID, number), network, signal,
    SMSC and storage; with --send a real SMS, with --ussd a balance query.
    """
    import asyncio

    from at_commands import PROFILES

    if profile_name is not None and profile_name.lower() not in PROFILES:
        raise click.BadParameter(f"choose one of {', '.join(PROFILES)}", param_hint="--profile")
    try:
        report = asyncio.run(_probe(port, pin, profile_name, baud, answer_wait, send_to,
                                    ussd_code))
    except KeyboardInterrupt:
        raise click.Abort()
    if as_json:
        echo_json_as_given(report)
        return
    info = report["modem"]
    rows = [
        ("port", info["port"]), ("profile", info["profile"]),
        ("manufacturer", info["manufacturer"]), ("model", info["model"]),
        ("revision", info["revision"]), ("IMEI", info["imei"]), ("IMSI", info["imsi"]),
        ("ICCID", info["iccid"]), ("number", info["msisdn"] or "(not on SIM)"),
        ("operator", info["operator"]),
        ("network", f"{info['registration_text'] or 'unknown'}"),
        ("signal", f"{info['signal_dbm']} dBm, {info['signal_bars']}/4 bars (CSQ {info['rssi']})"
         if info["signal_dbm"] is not None else "unknown (CSQ 99)"),
        ("SMSC", info["smsc"]),
        ("storage", ", ".join(f"{s['store']} {s['used']}/{s['total']}" for s in info["storage"])),
    ]
    for label, value in rows:
        click.echo(f"{label:<13} {value if value not in (None, '') else '-'}")
    if "sent" in report:
        refs = ", ".join(str(r) for r in report["sent"]["references"])
        click.echo(f"{'sent':<13} {report['sent']['parts']} part(s) to {report['sent']['to']}, "
                   f"references {refs}")
    if "ussd" in report:
        click.echo(f"{'USSD':<13} {report['ussd']['code']}: {report['ussd']['reply']}")


async def _probe(port, pin, profile_name, baud, answer_wait, send_to, ussd_code) -> dict:
    """Open, initialise, identify (and send / USSD); every failure becomes a ClickException."""
    import dataclasses

    import serial

    from at_commands import AtError, AtTimeout, Modem, PinError, Timing

    from modempool.box.ports import PortBusy, PortLock, exclusive_message

    modem = Modem(port, name="probe", pin=pin, profile=profile_name, baudrate=baud,
                  poll_interval=3600, sweep_interval=3600, reconnect_delays=(),
                  timing=Timing(answer_wait=answer_wait))
    lock = PortLock(port)
    try:
        lock.acquire()
    except PortBusy as error:
        raise click.ClickException(str(error))
    except OSError:
        pass  # a lock directory we may not write: TIOCEXCL still guards the port
    try:
        await modem.open()
    except (OSError, serial.SerialException) as error:
        lock.release()
        if "busy" in str(error).lower():
            raise click.ClickException(exclusive_message(port))
        raise click.ClickException(f"cannot open {port}: {error}")
    try:
        try:
            await modem.initialise()
        except AtTimeout:
            raise click.ClickException(f"{port} does not answer AT: not a modem, the wrong port "
                                       "of a multi-port stick, or a wrong baud rate")
        except PinError as error:
            hint = "" if pin else " (give it with --pin)"
            raise click.ClickException(f"{port}: {error}{hint}")
        except AtError as error:
            raise click.ClickException(f"{port}: initialisation failed: {error}")
        info = await modem.identify()
        report: dict = {"modem": dataclasses.asdict(info)}
        if send_to is not None:
            from pdu import PduError, encode_submit

            number, text = send_to
            try:
                parts = encode_submit(number, text)
            except PduError as error:
                raise click.ClickException(f"cannot encode the message: {error}")
            try:
                references = await modem.send(parts)
            except AtError as error:
                kind = getattr(error, "error_class", None)
                raise click.ClickException(
                    f"send failed: {error} ({kind.value if kind else 'error'}); parts sent before "
                    f"it: {list(getattr(error, 'references', ()))}")
            report["sent"] = {"to": number, "parts": len(parts), "references": references}
        if ussd_code is not None:
            try:
                reply = await modem.ussd(ussd_code)
            except AtError as error:
                raise click.ClickException(f"USSD {ussd_code} failed: {error}")
            report["ussd"] = {"code": ussd_code, "reply": reply}
        return report
    except (OSError, serial.SerialException) as error:
        raise click.ClickException(f"{port}: I/O error: {error}")
    finally:
        await modem.close()
        lock.release()


COMMANDS = [probe]


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    for command in COMMANDS:
        group.add_command(command)
