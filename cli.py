"""The `modempool` command: a thin click shell over the libraries."""

from __future__ import annotations

import click

from modempool.commands.errors import OneLineErrors, Utf8File


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modempool")
def main() -> None:
    """modempool: drive a bank of GSM modems (短信猫) to send and receive SMS."""


# ---- section: pdu (codec) ----


def _pdu_validity(value: str | None):
    """'90m', '12h', '3d', '2w' or plain minutes -> timedelta."""
    from datetime import timedelta

    if value is None:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    text = value.strip().lower()
    unit = units.get(text[-1:], None)
    number = text[:-1] if unit else text
    try:
        amount = float(number)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use e.g. 90m, 12h, 3d, 2w", param_hint="--validity")
    return timedelta(**{unit or "minutes": amount})


@main.group("pdu")
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
    import json

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
        click.echo(json.dumps({
            "to": to, "alphabet": cost.alphabet.value,
            "national": {"locking": cost.national[0], "single": cost.national[1]},
            "reference": parts[0].reference, "ref16": ref16, "total": len(parts),
            "units": cost.units, "units_per_part": cost.units_per_part, "chars_left": cost.chars_left,
            "parts": [{"seq": p.seq, "text": t, "tpdu_length": p.tpdu_length, "hex": p.hex}
                      for p, t in zip(parts, texts)],
        }, ensure_ascii=False))
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
    import json

    from pdu import PduError, decode_pdu, to_json

    try:
        msg = decode_pdu(hex_pdu, smsc=not no_smsc)
    except PduError as exc:
        raise click.ClickException(str(exc))
    data = to_json(msg)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    for key, value in data.items():
        if value in (None, (), [], "", False) and key not in ("text",):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        click.echo(f"{key:>24}: {value}")

# ---- section: sim (simulator) ----


@main.group("sim")
def sim_group() -> None:
    """A bank of simulated modems on pseudo-terminals (see docs/simulator.md)."""


def _sim_run(coroutine):
    import asyncio

    try:
        return asyncio.run(coroutine)
    except (ConnectionError, ValueError) as exc:
        raise click.ClickException(str(exc))


@sim_group.command("start")
@click.option("--modems", type=click.IntRange(1, 512), default=4, show_default=True)
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
              help="Where the symlinks, bank.json, network.jsonl and control.sock go.")
@click.option("--latency", type=float, default=0.0, show_default=True,
              help="Seconds before every final result.")
@click.option("--personality", default="simcom", show_default=True,
              help="wavecom, simcom, huawei, zte, quectel, or mixed.")
@click.option("--seed", type=int, default=None, help="Seed for IMEIs, IMSIs, ICCIDs.")
@click.option("--realistic", is_flag=True,
              help="Use each vendor's typical timings (about 3 s per SMS).")
@click.option("--fault", "faults", multiple=True, metavar="MODEM:FAULT[:k=v,...]",
              help="A fault from the start, e.g. m2:cms_error:code=500 (repeatable).")
@click.option("--chatter", type=float, default=1.0, show_default=True,
              help="Scale of the vendors' periodic URCs (Huawei ^RSSI, ^MODE...); 0: none.")
def sim_start(modems, directory, latency, personality, seed, realistic, faults, chatter) -> None:
    """Run a simulated bank in the foreground until Ctrl-C / SIGTERM."""
    from simulator.bank import SimulatedBank
    from simulator.control import parse_fault_options, serve

    try:
        bank = SimulatedBank(modems, directory, personality=personality, seed=seed,
                             latency=latency, realistic=realistic,
                             faults=parse_fault_options(faults), chatter=chatter)
    except ValueError as exc:
        raise click.ClickException(str(exc))
    _sim_run(serve(bank, lambda line: click.echo(line)))


@sim_group.command("inject")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False))
@click.option("--to", "to", required=True, help="MSISDN of a simulated SIM, or a modem name (m1).")
@click.option("--from", "sender", required=True, help="The outside number the SMS comes from.")
@click.option("--out-of-order", is_flag=True, help="Deliver the parts of a long text last first.")
@click.option("--parts-delay", type=float, default=0.0, help="Seconds between parts.")
@click.argument("text")
def sim_inject(directory, to, sender, out_of_order, parts_delay, text) -> None:
    """Send TEXT from an outside number to a simulated SIM."""
    from simulator.control import request

    result = _sim_run(request(directory, op="inject", to=to, sender=sender, text=text,
                              out_of_order=out_of_order, parts_delay=parts_delay))
    click.echo(f"injected {result['parts']} part(s) to {to}")


@sim_group.command("fault")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False))
@click.option("--clear", is_flag=True, help="Clear FAULT (or every fault if FAULT is omitted).")
@click.argument("modem")
@click.argument("fault", required=False)
@click.argument("params", nargs=-1)
def sim_fault(directory, clear, modem, fault, params) -> None:
    """Give MODEM a FAULT (params as key=value), or clear it with --clear.

    Faults: latency, sms_latency, cms_error, no_registration, sim_absent, pin_locked,
    hang_after_pdu, hang, unplug, garbage, boot_noise, storage_full, balance, no_status_report.
    """
    from simulator.control import parse_params, request

    if clear:
        _sim_run(request(directory, op="clear", modem=modem, fault=fault))
        click.echo(f"{modem}: cleared {fault or 'all faults'}")
        return
    if not fault:
        raise click.UsageError("name a FAULT, or use --clear")
    try:
        parsed = parse_params(params)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="PARAMS")
    _sim_run(request(directory, op="fault", modem=modem, fault=fault, params=parsed))
    click.echo(f"{modem}: {fault} {' '.join(params)}".rstrip())


@sim_group.command("log")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries.")
def sim_log(directory, as_json, follow) -> None:
    """What reached the virtual network (parts, messages, injected SMS)."""
    import json

    from simulator.control import read_log

    async def show() -> None:
        async for entry in read_log(directory, follow=follow):
            if as_json:
                click.echo(json.dumps(entry, ensure_ascii=False))
            elif entry["kind"] == "message":
                click.echo(f"{entry['time']}  {entry['from']} -> {entry['to']}: {entry['text']}")
            elif entry["kind"] == "inbound":
                click.echo(f"{entry['time']}  {entry['from']} => {entry['to']} (injected): "
                           f"{entry['text']}")

    try:
        _sim_run(show())
    except KeyboardInterrupt:
        pass


# ---- section: probe (one modem) ----


@main.command("probe")
@click.argument("port")
@click.option("--pin", default=None, help="SIM PIN, entered once if the SIM asks (never retried).")
@click.option("--profile", "profile_name", default=None,
              help="Vendor profile (generic, wavecom, simcom, huawei, zte, quectel); default: detect.")
@click.option("--baud", default=115200, show_default=True, help="Baud rate.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--send", "send_to", nargs=2, metavar="NUMBER TEXT", default=None,
              help="Send one SMS through this modem and print the part references.")
@click.option("--ussd", "ussd_code", default=None, metavar="CODE", help="USSD query, e.g. *100#.")
def probe(port, pin, profile_name, baud, as_json, send_to, ussd_code) -> None:
    """Open one modem on PORT, initialise it and print who and how it is.

    The smallest field test of a modem: identity (IMEI, IMSI, ICCID, number), network, signal,
    SMSC and storage; with --send a real SMS, with --ussd a balance query.
    """
    import asyncio
    import json

    from at_commands import PROFILES

    if profile_name is not None and profile_name.lower() not in PROFILES:
        raise click.BadParameter(f"choose one of {', '.join(PROFILES)}", param_hint="--profile")
    try:
        report = asyncio.run(_probe(port, pin, profile_name, baud, send_to, ussd_code))
    except KeyboardInterrupt:
        raise click.Abort()
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))
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


async def _probe(port, pin, profile_name, baud, send_to, ussd_code) -> dict:
    """Open, initialise, identify (and send / USSD); every failure becomes a ClickException."""
    import dataclasses

    import serial

    from at_commands import AtError, AtTimeout, Modem, PinError

    from modempool.box.ports import PortBusy, PortLock, exclusive_message

    modem = Modem(port, name="probe", pin=pin, profile=profile_name, baudrate=baud,
                  poll_interval=3600, sweep_interval=3600, reconnect_delays=())
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


# ---- section: pool (run, send, status, queue, inbox, demo) ----

# pool: the spool commands (init, send, queue, cancel, retry, inbox, status); they work on the
# spool file alone, whether or not the daemon runs.

_CONFIG_OPTION = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Config file (default ./modempool.toml, then ~/.config/modempool/).")


def _pool_open(config_path, spool_path=None, create=True):
    """The front door for a command; a bad config becomes a clean click error."""
    from modempool import Pool
    from modempool.errors import PoolError

    try:
        pool = Pool.open(config_path, spool_path=spool_path, create=create)
        if pool.config.spool_url:  # a database: unreachable is one clear line, now
            pool.spool
        return pool
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None


def _pool_when(value, option, *, past=False):
    """A time option read by the library (in `[pool] timezone`); a bad one is a usage error."""
    from modempool.when import InvalidTime, parse_when

    try:
        return parse_when(value, past=past)
    except InvalidTime as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _pool_local(text):
    """A stored UTC time as short local time for tables."""
    from modempool.spool import from_text

    moment = from_text(text) if isinstance(text, str) else text
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _pool_echo_json(data):
    import json

    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _pool_table(title, columns, rows):
    from modempool.commands.output import print_table

    print_table(title, columns, rows)


def _pool_messages_table(messages, title):
    rows = [(m.id, m.to, m.state.value, m.sim, m.attempts, m.priority,
             _pool_local(m.not_before) if m.state.value == "queued" else _pool_local(m.updated_at),
             (m.text if len(m.text) <= 40 else m.text[:39] + "…").replace("\n", " "), m.error)
            for m in messages]
    _pool_table(title, ["id", "to", "state", "sim", "tries", "prio", "when", "text", "error"], rows)


@main.command("init")
@_CONFIG_OPTION
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init_command(config_path, force) -> None:
    """Write a commented example config (to --config, default ./modempool.toml)."""
    from importlib.resources import files
    from pathlib import Path

    from modempool.private_files import write_private

    target = Path(config_path or "modempool.toml")
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite it")
    write_private(target, files("modempool").joinpath("init_template.toml").read_text("utf-8"))
    click.echo(f"wrote {target}: edit the [[modem]] ports, then run `modempool run --config {target}`"
               " (or `modempool run --simulate 4` to try it without hardware)")


@main.command("send")
@click.argument("args", nargs=-1, required=True, metavar="NUMBER... TEXT")
@_CONFIG_OPTION
@click.option("--file", "text_file", type=Utf8File(), default=None,
              help="Read the text from this file (then every argument is a number).")
@click.option("--wait", is_flag=True, help="Wait until each message is sent or fails; "
              "exit 1 if any failed, expired, was cancelled or is ambiguous.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many "
              "seconds (exit 3).")
@click.option("--at", "at", default=None, help="Send not before: HH:MM, +10m, or YYYY-MM-DD HH:MM.")
@click.option("--expires", default=None, help="Give up if not sent by then (same forms as --at).")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher goes first.")
@click.option("--client-id", default=None, help="Idempotency key: the same id twice sends once.")
@click.option("--sim", "sims", multiple=True, help="Only send through this SIM (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the queued messages as JSON.")
@click.option("--to-opted-out", "to_opted_out", is_flag=True,
              help="Send even to numbers that opted out (with [optout] block_direct set); "
              "blacklisted numbers never get anything.")
def send_command(args, config_path, text_file, wait, timeout, at, expires, priority, client_id,
                 sims, as_json, to_opted_out) -> None:
    """Queue TEXT to each NUMBER (TEXT '-' reads standard input). The daemon sends it."""
    import sys

    from modempool.spool import SUCCESS_STATES

    if text_file is not None:
        numbers, text = list(args), text_file.read()
    elif len(args) < 2:
        raise click.UsageError("give at least one NUMBER and the TEXT (or --file)")
    else:
        numbers, text = list(args[:-1]), args[-1]
        if text == "-":
            text = sys.stdin.read()
    if text.endswith("\n") and (text_file is not None or args[-1] == "-"):
        text = text[:-1]
    from modempool.errors import OptedOut, PoolError, RefusedMany

    _pool_when(at, "--at"), _pool_when(expires, "--expires")  # usage errors before the config
    pool = _pool_open(config_path)
    try:
        messages = pool.send(numbers, text, client_id=client_id, at=at, expires=expires,
                             priority=priority, sims=sims, to_opted_out=to_opted_out)
    except PoolError as exc:
        refusals = exc.refusals if isinstance(exc, RefusedMany) else [exc]
        hint = " (--to-opted-out sends to opted-out numbers anyway)" if any(
            isinstance(r, OptedOut) for r in refusals) else ""
        raise click.ClickException(f"{exc}; nothing was queued{hint}") from None
    if not as_json:
        for m in messages:
            when = f", not before {_pool_local(m.not_before)}" if m.not_before else ""
            click.echo(f"#{m.id} to {m.to}: {m.state.value}{when}")
    if wait:
        result = pool.wait([m.id for m in messages], timeout=timeout)
        messages = list(result.messages)
        if result.timed_out:
            if as_json:
                _pool_echo_json([m.to_dict() for m in messages])
            click.echo("Error: timed out waiting; still " + ", ".join(
                f"#{m.id} {m.state.value}" for m in result.pending), err=True)
            raise SystemExit(3)
        if not as_json:
            for m in messages:
                click.echo(f"#{m.id} to {m.to}: {m.state.value}" + (f" via {m.sim}" if m.sim else "")
                           + (f" ({m.error})" if m.error and m.state not in SUCCESS_STATES else ""))
    if as_json:
        _pool_echo_json([m.to_dict() for m in messages])
    if wait and not result.all_succeeded:
        raise SystemExit(1)


@main.command("queue")
@_CONFIG_OPTION
@click.option("--state", type=click.Choice(["queued", "sending", "sent", "delivered", "failed",
                                            "expired", "cancelled", "ambiguous"]), default=None)
@click.option("--campaign", "campaign_id", type=int, default=None, help="Only this campaign.")
@click.option("--limit", type=int, default=None, help="Only the last N messages.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a list of {id, to, text, state, sim, attempts, ...}.")
def queue_command(config_path, state, campaign_id, limit, as_json) -> None:
    """List messages in the spool, oldest first."""
    pool = _pool_open(config_path, create=False)
    if limit is None and not as_json:
        limit = 100  # a table of a million rows helps nobody; --json gives them all
    messages = pool.messages(state=state, campaign=campaign_id, limit=limit)
    if as_json:
        _pool_echo_json([m.to_dict() for m in messages])
        return
    counts = ", ".join(f"{n} {s}" for s, n in pool.counts().items() if n)
    shown = f"last {len(messages)}" if len(messages) == limit else f"{len(messages)}"
    _pool_messages_table(messages, f"{shown} message(s) — spool: {counts or 'empty'}")


def _pool_decide(config_path, ids, action):
    from modempool.errors import PoolError

    pool = _pool_open(config_path, create=False)
    failed = False
    for message_id in ids:
        try:
            was = pool.get(message_id).state.value
            message = getattr(pool, action)(message_id)
            if was == "ambiguous":
                click.echo(f"note: #{message_id} may already have been delivered once; "
                           "it will be sent again", err=True)
        except PoolError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed = True
            continue
        click.echo(f"#{message.id} to {message.to}: {message.state.value}")
    if failed:
        raise SystemExit(1)


@main.command("cancel")
@click.argument("ids", nargs=-1, required=True, type=int, metavar="ID...")
@_CONFIG_OPTION
def cancel_command(ids, config_path) -> None:
    """Cancel queued message(s)."""
    _pool_decide(config_path, ids, "cancel")


@main.command("retry")
@click.argument("ids", nargs=-1, required=True, type=int, metavar="ID...")
@_CONFIG_OPTION
def retry_command(ids, config_path) -> None:
    """Queue failed, expired or ambiguous message(s) again (for ambiguous: may send twice)."""
    _pool_decide(config_path, ids, "retry")


@main.command("inbox")
@_CONFIG_OPTION
@click.option("--since", default=None, help="Only since: HH:MM, YYYY-MM-DD [HH:MM], or -2h/-1d.")
@click.option("--from", "sender", default=None, help="Only from this number.")
@click.option("--limit", type=int, default=None, help="Only the last N messages.")
@click.option("--json", "as_json", is_flag=True, help="Print a list of received messages.")
def inbox_command(config_path, since, sender, limit, as_json) -> None:
    """List received messages, oldest first."""
    _pool_when(since, "--since", past=True)
    pool = _pool_open(config_path, create=False)
    if limit is None and not as_json:
        limit = 100
    received = pool.inbox(since=since, sender=sender, limit=limit)
    if as_json:
        _pool_echo_json([r.to_dict() for r in received])
        return
    _pool_table(f"{len(received)} received message(s)",
                ["id", "received", "from", "name", "groups", "sim", "text"],
                [(r.id, _pool_local(r.received_at), r.sender, r.name, ", ".join(r.groups), r.sim,
                  r.text + ("" if r.complete else "  [incomplete]")) for r in received])


@main.command("status")
@_CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print SIMs and queue as JSON.")
def status_command(config_path, as_json) -> None:
    """Every modem/SIM (state, number, signal, operator, sent vs quota, why quarantined) and the
    queue depth; whether the daemon runs."""
    from modempool.dispatch.liveness import sim_note

    status = _pool_open(config_path, create=False).status()
    if as_json:
        _pool_echo_json(status.to_dict())
        return
    sims, counts = [s.to_dict() for s in status.sims], status.queue
    campaigns = [c.to_dict() for c in status.campaigns]

    def of(value, limit):
        return f"{value}/{limit}" if limit else str(value)

    click.echo(status.daemon.describe())
    _pool_table(f"{len(sims)} SIM(s) — spool {status.spool}",
                ["sim", "state", "number", "signal", "operator", "balance", "today", "month",
                 "errors", "port", "note"],
                [(s["name"], s.get("state"), s.get("msisdn"), s.get("signal"), s.get("operator"),
                  s.get("balance"), of(s["sent_today"], s["per_day"]),
                  of(s["sent_month"], s["per_month"]), s.get("errors"), s.get("port"), sim_note(s))
                 for s in sims])
    click.echo("queue: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n or
                                     state == "queued"))
    if campaigns:
        _pool_table(f"{len(campaigns)} campaign(s) running or paused",
                    ["id", "name", "state", "done", "sent", "delivered", "failed", "pending",
                     "per min", "eta"],
                    [(c["campaign"], c["name"], c["state"], f"{c['done']}/{c['total']}", c["sent"],
                      c["delivered"], c["failed"], c["pending"], c["rate_per_minute"],
                      f"{c['eta_seconds']} s" if c["eta_seconds"] is not None else "")
                     for c in campaigns])

# pool: `run` and `demo` (the daemon side)


@main.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default ./modempool.toml, then ~/.config/modempool/).")
@click.option("--simulate", type=click.IntRange(1, 512), default=None,
              help="Start a simulated bank of N modems in-process instead of real ones.")
@click.option("-v", "--verbose", count=True, help="More log (-vv: AT traffic).")
@click.option("--http", "http_listen", default=None, metavar="HOST:PORT",
              help="Serve the HTTP API too (as [http] listen; see docs/http.md).")
def run_command(config_path: str | None, simulate: int | None, verbose: int,
                http_listen: str | None) -> None:
    """Run the daemon: drive every modem, send the queue, store what comes in."""
    import asyncio

    from modempool.config import load_config
    from modempool.dispatch.daemon import Daemon
    from modempool.errors import PoolError
    from modempool.http_listen import with_listen
    from modempool.logs import setup_logging

    try:
        config = with_listen(load_config(config_path), http_listen)
        setup_logging(config, verbose=verbose)
        asyncio.run(Daemon(config, simulate=simulate).run())
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


@main.command("demo")
@click.option("--modems", type=click.IntRange(1, 16), default=4, help="Simulated modems.")
@click.option("--plain", is_flag=True, help="No live display (for logs and CI).")
@click.option("--spool", "spool_path", type=click.Path(dir_okay=False), default=None,
              help="Keep the demo's spool in this file (default: a temporary one, removed).")
def demo_command(modems: int, plain: bool, spool_path: str | None) -> None:
    """Send a handful of messages and a small campaign through a simulated bank; show where they
    went, the replies (with the contacts' names) and an opt-out (退订)."""
    import asyncio

    from modempool.demo import run_demo

    raise SystemExit(asyncio.run(run_demo(modems=modems, live=not plain, spool_path=spool_path)))


# ---- section: operator (contacts, groups, campaign, optout, autoreply, history, backup) ----

# Most operator commands are `@_op_command` bodies: they take their own options plus the open
# `spool` and `config`, call the library and return `(data, human)`. The few whose output is more
# than one result (import rejections, `--follow`) use `_op_options`, `_op_errors` and `_op_open`.


def _op_options(func):
    """--config, --db and --json for every operator command."""
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)
    func = click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
                        help="Spool database file (default: the one the config names).")(func)
    return click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                        help="Config file (default ./modempool.toml).")(func)


def _op_open(config_path, db_path):
    """(spool, config) for a command; a PoolError becomes a clean click error."""
    from modempool.config import load_config
    from modempool.errors import PoolError
    from modempool.spool import Spool

    try:
        config = load_config(config_path)
        if db_path:
            return Spool(db_path, region=config.region, max_parts=config.max_parts), config
        return config.open_spool(), config
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None


def _op_echo(as_json, data, human=None) -> None:
    """`data` as JSON with --json; else `human`: a line, or a function that prints `data`."""
    import json

    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=1, default=str))
    elif human is not None:
        human(data) if callable(human) else click.echo(human)


def _op_table(rows, columns) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, box=None, header_style="bold")
    for row in rows:
        table.add_row(*["" if row.get(c) is None else str(row.get(c)) for c in columns])
    Console().print(table)


def _op_errors(func):
    """Turn library errors into `Error: ...` and exit status 1."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from modempool.errors import PoolError

        try:
            return func(*args, **kwargs)
        except PoolError as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


def _op_command(body):
    """Make `body(**options, spool=, config=) -> (data, human)` a command callback: adds --config,
    --db and --json, opens the spool, prints what the body returns (see `_op_echo`)."""
    import functools

    @_op_options
    @_op_errors
    @functools.wraps(body)
    def callback(config_path, db_path, as_json, **options):
        spool, config = _op_open(config_path, db_path)
        _op_echo(as_json, *body(**options, spool=spool, config=config))
    return callback


def _op_mapping(pairs):
    mapping = {}
    for pair in pairs:
        target, sep, column = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: use TARGET=COLUMN, e.g. number=手机", param_hint="--map")
        mapping[target.strip()] = column.strip()
    return mapping


def _op_time(value, hint):
    from modempool.operator.db import parse_time

    try:
        return parse_time(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use e.g. '2026-12-01 09:00'", param_hint=hint) from None


def _op_selection(group_exprs):
    """Several --group A+B-C options as one Selection."""
    from modempool.operator.contacts import Selection, parse_selection

    include, exclude = [], []
    for expr in group_exprs:
        selection = parse_selection(expr)
        include += selection.include
        exclude += selection.exclude
    return Selection(tuple(include), tuple(exclude))


@main.group("contacts")
def contacts_group() -> None:
    """Address book (通讯录): import, list, export contacts.

    \b
    modempool contacts import 家长.xlsx --group 家长
    modempool contacts import list.csv --map number=手机号 --map name=姓名
    modempool contacts list --group 家长
    modempool contacts export all.xlsx
    """


@contacts_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--map", "maps", multiple=True, metavar="TARGET=COLUMN",
              help="Column mapping: number, name, birthday, groups, notes (e.g. number=手机).")
@click.option("--group", "groups", multiple=True, help="Also put every imported contact in GROUP.")
@click.option("--encoding", default=None, help="Force an encoding (default: UTF-8/BOM/GBK detected).")
@click.option("--sheet", default=None, help="XLSX sheet name (default: the first).")
@click.option("--skip-bad", is_flag=True, help="Import the good rows even if some are rejected.")
@click.option("--dry-run", is_flag=True, help="Check the file, store nothing.")
@_op_options
@_op_errors
def contacts_import(path, maps, groups, encoding, sheet, skip_bad, dry_run, config_path, db_path,
                    as_json) -> None:
    """Import CSV, XLSX or TXT; any bad row and nothing is imported (unless --skip-bad).

    \b
    Every rejected row is listed with its line and reason.
    modempool contacts import 学生家长.csv --group 三年级 --map number=联系电话
    """
    from modempool.operator.contacts import AddressBook
    from modempool.operator.importers import ImportRejected, import_contacts

    spool, config = _op_open(config_path, db_path)
    try:
        report = import_contacts(AddressBook(spool.db, config.region), path,
                                 mapping=_op_mapping(maps), groups=groups, encoding=encoding,
                                 sheet=sheet, skip_rejected=skip_bad, dry_run=dry_run)
    except ImportRejected as exc:
        _op_echo(as_json, exc.report.as_dict())
        if not as_json:
            click.echo(f"{len(exc.report.rejected)} row(s) rejected, nothing imported:", err=True)
            click.echo(exc.report.describe_rejected(), err=True)
        raise SystemExit(1)
    _op_echo(as_json, report.as_dict(), lambda r: click.echo(
        f"{'checked' if dry_run else 'imported'} {len(report.accepted) if dry_run else r['imported']}"
        f" contact(s) from {r['path']} ({r['format']}, {r['encoding'] or 'xlsx'})"
        + (f"; {len(report.rejected)} rejected:\n" + report.describe_rejected() if report.rejected else "")))


@contacts_group.command("add")
@click.argument("number")
@click.option("--name", default="", help="Name (姓名).")
@click.option("--field", "fields", multiple=True, metavar="KEY=VALUE", help="Extra field, e.g. 班级=一班.")
@click.option("--birthday", default=None, help="1990-05-17 or 05-17.")
@click.option("--notes", default="")
@click.option("--group", "groups", multiple=True, help="Group(s) to join.")
@_op_command
def contacts_add(number, name, fields, birthday, notes, groups, spool, config):
    """Add or update one contact: modempool contacts add 13800138000 --name 张三 --group 员工"""
    from modempool.operator.contacts import AddressBook
    from modempool.operator.importers import parse_birthday

    try:
        birthday = parse_birthday(birthday) if birthday else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--birthday") from None
    extra = {}
    for pair in fields:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: use KEY=VALUE", param_hint="--field")
        extra[key] = value
    contact = AddressBook(spool.db, config.region).upsert(number, name, fields=extra,
                                                          birthday=birthday, notes=notes, groups=groups)
    return contact.as_dict(), f"{contact.number} {contact.name} saved"


@contacts_group.command("remove")
@click.argument("number")
@_op_command
def contacts_remove(number, spool, config):
    """Delete a contact."""
    from modempool.operator.contacts import AddressBook

    AddressBook(spool.db, config.region).remove(number)
    return {"removed": number}, f"removed {number}"


@contacts_group.command("list")
@click.option("--group", default=None, help="Only this group's members.")
@click.option("--search", default=None, help="Match name, number or notes (e.g. 张).")
@_op_command
def contacts_list(group, search, spool, config):
    """List contacts with their groups: modempool contacts list --group 家长"""
    from modempool.operator.contacts import AddressBook

    rows = [c.as_dict() for c in AddressBook(spool.db, config.region).list(group=group, search=search)]
    flat = [{**r, "groups": ",".join(r["groups"]),
             "fields": " ".join(f"{k}={v}" for k, v in r["fields"].items())} for r in rows]
    return rows, lambda _: _op_table(flat, ["number", "name", "groups", "birthday", "fields"])


@contacts_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--group", default=None, help="Only this group's members.")
@click.option("--encoding", default="utf-8-sig", show_default=True,
              help="CSV encoding (gbk for old Excel versions).")
@_op_command
def contacts_export(path, group, encoding, spool, config):
    """Export to CSV or XLSX (by extension): modempool contacts export 通讯录.xlsx"""
    from modempool.operator.contacts import AddressBook
    from modempool.operator.importers import export_contacts

    count = export_contacts(AddressBook(spool.db, config.region), path, group=group, encoding=encoding)
    return {"path": path, "contacts": count}, f"wrote {count} contact(s) to {path}"


@main.group("groups")
def groups_group() -> None:
    """Contact groups (分组); combine them at send time as A+B-C.

    \b
    modempool groups create 教师
    modempool groups add 教师 13800138000 13900139000
    modempool groups show "家长+教师-毕业班"
    """


@groups_group.command("list")
@_op_command
def groups_list(spool, config):
    """Every group with its member count."""
    from modempool.operator.contacts import AddressBook

    rows = AddressBook(spool.db, config.region).groups()
    return rows, lambda r: _op_table(r, ["name", "members", "description"])


@groups_group.command("create")
@click.argument("name")
@click.option("--description", default="")
@_op_command
def groups_create(name, description, spool, config):
    """Create a group."""
    from modempool.operator.contacts import AddressBook

    AddressBook(spool.db, config.region).create_group(name, description)
    return {"created": name}, f"group {name} ready"


@groups_group.command("delete")
@click.argument("name")
@_op_command
def groups_delete(name, spool, config):
    """Delete a group (its contacts stay)."""
    from modempool.operator.contacts import AddressBook

    AddressBook(spool.db, config.region).delete_group(name)
    return {"deleted": name}, f"group {name} deleted"


@groups_group.command("add")
@click.argument("name")
@click.argument("numbers", nargs=-1, required=True)
@_op_command
def groups_add(name, numbers, spool, config):
    """Put existing contacts in a group: modempool groups add 教师 13800138000"""
    from modempool.operator.contacts import AddressBook

    count = AddressBook(spool.db, config.region).add_to_group(name, numbers)
    return {"group": name, "added": count}, f"{count} contact(s) in {name}"


@groups_group.command("remove")
@click.argument("name")
@click.argument("numbers", nargs=-1, required=True)
@_op_command
def groups_remove(name, numbers, spool, config):
    """Take contacts out of a group."""
    from modempool.operator.contacts import AddressBook

    count = AddressBook(spool.db, config.region).remove_from_group(name, numbers)
    return {"group": name, "removed": count}, f"{count} contact(s) removed from {name}"


@groups_group.command("show")
@click.argument("expression")
@_op_command
def groups_show(expression, spool, config):
    """Members of a group expression, each once: modempool groups show "家长+教师-毕业班" """
    from modempool.operator.contacts import AddressBook, parse_selection

    rows = [c.as_dict() for c in AddressBook(spool.db, config.region).select(parse_selection(expression))]
    flat = [{**r, "groups": ",".join(r["groups"])} for r in rows]
    return rows, lambda _: (_op_table(flat, ["number", "name", "groups"]),
                            click.echo(f"{len(flat)} contact(s)"))


@main.group("campaign")
def campaign_group() -> None:
    """Bulk sending (群发) with per-recipient text, preview, pause/resume, report.

    \b
    modempool campaign create 家长会 --group "家长-毕业班" --text "{name}家长您好：周五下午3点开家长会。"
    modempool campaign create 促销 --sheet 客户.xlsx --text "{name}您好，{门店}本周8折" --rate 30
    modempool campaign preview 1
    modempool campaign start 1 --follow
    modempool campaign pause 1 ; modempool campaign resume 1
    modempool campaign report 1 --export 报告.xlsx
    A crash or restart never sends twice: run `campaign start 1` again to finish (断点续发).
    """


@campaign_group.command("create")
@click.argument("name")
@click.option("--text", "template", required=True, help="Template; {name} or any column, e.g. {班级}.")
@click.option("--to", "numbers", multiple=True, help="Numbers (repeat, or comma-separated).")
@click.option("--group", "group_exprs", multiple=True, help="Groups as A+B-C (repeatable).")
@click.option("--sheet", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV/XLSX of recipients; its columns are template fields.")
@click.option("--map", "maps", multiple=True, metavar="TARGET=COLUMN", help="Sheet column mapping.")
@click.option("--kind", type=click.Choice(["marketing", "notice"]), default="marketing",
              show_default=True, help="Marketing campaigns keep quiet hours and get the signature.")
@click.option("--start", "start_at", default=None, help="Start time, e.g. '2026-12-01 09:00' (local).")
@click.option("--end", "end_at", default=None, help="Messages not sent by then expire.")
@click.option("--quiet-hours/--no-quiet-hours", default=None,
              help="Hold sending in quiet hours (default: on for marketing).")
@click.option("--rate", type=float, default=None, help="At most N messages per minute.")
@click.option("--sim", "sims", multiple=True, help="Only these SIMs (repeatable).")
@click.option("--priority", type=int, default=-1, show_default=True)
@_op_command
def campaign_create(name, template, numbers, group_exprs, sheet, maps, kind, start_at, end_at,
                    quiet_hours, rate, sims, priority, spool, config):
    """Save a campaign (not sent until `campaign start`)."""
    from modempool.operator.campaigns import Campaigns

    config.check_sims(sims)
    groups = _op_selection(group_exprs)
    listed = [n.strip() for item in numbers for n in item.replace("，", ",").split(",") if n.strip()]
    campaign = Campaigns(spool, config).create(
        name, template, numbers=listed, groups=groups,
        sheet=sheet, mapping=_op_mapping(maps), kind=kind,
        start_at=_op_time(start_at, "--start"), end_at=_op_time(end_at, "--end"),
        quiet_hours=quiet_hours, rate_per_minute=rate, sims=sims or None, priority=priority)
    return campaign.as_dict(), (f"campaign {campaign.id} saved; check it with: "
                                f"modempool campaign preview {campaign.id}")


@campaign_group.command("list")
@_op_command
def campaign_list(spool, config):
    """Saved campaigns and their states."""
    from modempool.operator.campaign_report import progress
    from modempool.operator.campaigns import Campaigns

    rows = []
    for campaign in Campaigns(spool, config).list():
        p = progress(spool, campaign.id).to_dict()
        rows.append({**campaign.as_dict(), **{k: p[k] for k in (
            "state", "total", "pending", "sent", "delivered", "failed")}})
    return rows, lambda r: _op_table(
        r, ["id", "name", "kind", "state", "total", "pending", "sent", "delivered", "failed"])


@campaign_group.command("preview")
@click.argument("campaign_id", type=int)
@click.option("--sample", type=int, default=3, show_default=True, help="Rendered messages to show.")
@_op_command
def campaign_preview(campaign_id, sample, spool, config):
    """Recipients after dedupe and opt-outs, total parts (cost), samples, problems."""
    from modempool.operator.campaign_plan import preview
    from modempool.operator.campaigns import Campaigns

    campaigns = Campaigns(spool, config)
    data = preview(spool.db, campaigns.get(campaign_id), config, sample=sample, region=campaigns.region)

    def human(d):
        click.echo(f"campaign {d['campaign']} {d['name']}: {d['recipients']} recipient(s), "
                   f"{d['total_parts']} SMS part(s); removed {d['duplicates_removed']} duplicate(s), "
                   f"{d['opted_out_removed']} opted out")
        click.echo(f"quiet hours: {'on' if d['quiet_hours'] else 'off'}; "
                   f"rate: {d['rate_per_minute'] or 'no cap'}/min; SIMs: {d['sims'] or 'any'}")
        for s in d["samples"]:
            click.echo(f"  → {s['to']} {s['name']} ({s['parts']} part(s)): {s['text']}")
        for p in d["problems"]:
            click.echo(f"  ! {p}")
        click.echo("ready to start" if d["can_start"] else "fix the problems, or start with --skip-problems")
    return data, human


def _op_follow(spool, campaign_id) -> dict:
    """Live progress until nothing is pending (Ctrl-C stops watching, not the campaign)."""
    import time

    from rich.console import Console
    from rich.live import Live
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    from modempool.operator.campaign_report import progress

    def view(p):
        table = Table.grid(padding=(0, 2))
        table.add_row(f"[bold]campaign {p['campaign']}[/] {p['name']}", p["state"])
        table.add_row(ProgressBar(total=max(p["total"], 1), completed=p["done"], width=40),
                      f"{p['done']}/{p['total']}")
        table.add_row(f"sent {p['sent']}  delivered {p['delivered']}  failed {p['failed']}  "
                      f"pending {p['pending']} (held {p['held']})",
                      f"{p['rate_per_minute']}/min  ETA "
                      + (f"{p['eta_seconds'] // 60}m{p['eta_seconds'] % 60:02d}s"
                         if p["eta_seconds"] is not None else "-"))
        return table

    current = progress(spool, campaign_id).to_dict()
    try:
        with Live(view(current), console=Console(), refresh_per_second=4) as live:
            while current["pending"] and current["state"] == "running":
                time.sleep(0.5)
                current = progress(spool, campaign_id).to_dict()
                live.update(view(current))
    except KeyboardInterrupt:
        pass
    return current


@campaign_group.command("start")
@click.argument("campaign_id", type=int)
@click.option("--skip-problems", is_flag=True, help="Leave out invalid numbers and rows missing fields.")
@click.option("--follow", is_flag=True, help="Show live progress until the campaign is done.")
@_op_options
@_op_errors
def campaign_start(campaign_id, skip_problems, follow, config_path, db_path, as_json) -> None:
    """Queue the campaign; run it again after a crash to finish it without duplicates.

    Sending is done by the daemon (`modempool run`).
    """
    from modempool.operator.campaigns import CampaignBlocked, Campaigns

    spool, config = _op_open(config_path, db_path)
    try:
        result = Campaigns(spool, config).start(campaign_id, skip_problems=skip_problems)
    except CampaignBlocked as exc:
        _op_echo(as_json, {"campaign": campaign_id, "started": False, "problems": exc.problems})
        raise click.ClickException(str(exc)) from None
    _op_echo(as_json, result, f"campaign {campaign_id}: {result['enqueued']} message(s) queued, "
                              f"{result['already_enqueued']} already queued before")
    if follow:
        final = _op_follow(spool, campaign_id)
        _op_echo(as_json, final)


@campaign_group.command("progress")
@click.argument("campaign_id", type=int)
@click.option("--follow", is_flag=True, help="Live display until done.")
@_op_command
def campaign_progress(campaign_id, follow, spool, config):
    """Sent / failed / pending, rate and ETA."""
    from modempool.operator.campaign_report import progress

    data = _op_follow(spool, campaign_id) if follow else progress(spool, campaign_id).to_dict()
    return data, lambda p: click.echo(
        f"campaign {p['campaign']} {p['state']}: {p['done']}/{p['total']} done, sent {p['sent']}, "
        f"delivered {p['delivered']}, failed {p['failed']}, pending {p['pending']}, "
        f"{p['rate_per_minute']}/min")


def _op_campaign_action(name, doc):
    @campaign_group.command(name, help=doc)
    @click.argument("campaign_id", type=int)
    @_op_command
    def action(campaign_id, spool, config):
        from modempool.operator.campaigns import Campaigns

        result = getattr(Campaigns(spool, config), name)(campaign_id)
        data = result.as_dict() if hasattr(result, "as_dict") else {"campaign": campaign_id,
                                                                    "cancelled": result}
        return data, f"campaign {campaign_id}: " + (
            f"{data['state']}" if "state" in data else f"cancelled, {result} queued message(s) dropped")
    return action


_op_campaign_action("pause", "Hold the campaign's queued messages.")
_op_campaign_action("resume", "Release a paused campaign.")
_op_campaign_action("cancel", "Cancel the campaign and its queued messages.")


@campaign_group.command("rerun")
@click.argument("campaign_id", type=int)
@click.option("--name", default=None)
@_op_command
def campaign_rerun(campaign_id, name, spool, config):
    """Copy a saved campaign into a new draft, to send it again."""
    from modempool.operator.campaigns import Campaigns

    campaign = Campaigns(spool, config).rerun(campaign_id, name)
    return campaign.as_dict(), f"campaign {campaign.id} created from {campaign_id}"


@campaign_group.command("report")
@click.argument("campaign_id", type=int)
@click.option("--export", "export_path", type=click.Path(dir_okay=False), default=None,
              help="Write the per-recipient report to CSV or XLSX.")
@_op_command
def campaign_report_command(campaign_id, export_path, spool, config):
    """Delivered, failed with reasons, replies, opt-outs: modempool campaign report 1 --export 报告.xlsx"""
    from modempool.operator.campaign_report import export_report, report

    data = report(spool, campaign_id)
    if export_path:
        data["exported"] = {"path": export_path, "rows": export_report(spool, campaign_id, export_path)}

    def human(d):
        s = d["summary"]
        click.echo(f"campaign {campaign_id} {d['campaign']['name']}: {s['recipients']} message(s); "
                   f"delivered {s['delivered']}, sent {s['sent']}, failed {s['failed']}, "
                   f"pending {s['queued'] + s['sending']}, cancelled {s['cancelled']}, "
                   f"expired {s['expired']}, ambiguous {s['ambiguous']}")
        click.echo(f"replies {s['replies']} from {s['repliers']} recipient(s); opt-outs {s['opt_outs']}; "
                   f"stopped at send (opted out or blacklisted) {s['stopped_at_send']}")
        for reason, count in s["failure_reasons"].items():
            click.echo(f"  failed {count}: {reason}")
        if "exported" in d:
            click.echo(f"wrote {d['exported']['rows']} row(s) to {d['exported']['path']}")
    return data, human


@main.group("optout")
def optout_group() -> None:
    """Opt-outs (退订) and the blacklist (黑名单).

    \b
    Replies like TD, T, 退订, N, STOP (any case or width) opt the sender out automatically.
    modempool optout add 13800138000
    modempool optout list --json
    modempool optout blacklist import 黑名单.txt
    """


@optout_group.command("list")
@_op_command
def optout_list(spool, config):
    """Numbers that opted out."""
    from modempool.operator.optout import OptOutList

    rows = OptOutList(spool.db, config.region).optouts()
    return rows, lambda r: _op_table(r, ["number", "keyword", "source", "created_at"])


@optout_group.command("add")
@click.argument("numbers", nargs=-1, required=True)
@_op_command
def optout_add(numbers, spool, config):
    """Opt numbers out by hand."""
    from modempool.operator.optout import OptOutList

    book = OptOutList(spool.db, config.region)
    added = [n for n in numbers if book.add(n, source="manual")]
    return {"added": len(added)}, f"{len(added)} number(s) opted out"


@optout_group.command("remove")
@click.argument("number")
@_op_command
def optout_remove(number, spool, config):
    """Opt a number back in (only with the person's consent)."""
    from modempool.operator.optout import OptOutList

    OptOutList(spool.db, config.region).remove(number)
    return {"removed": number}, f"{number} opted back in"


@optout_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@_op_command
def optout_export(path, spool, config):
    """Write the opt-out list to CSV or XLSX."""
    from modempool.operator.optout import OptOutList

    count = OptOutList(spool.db, config.region).export(path, "optouts")
    return {"path": path, "rows": count}, f"wrote {count} opt-out(s) to {path}"


@optout_group.group("blacklist")
def blacklist_group() -> None:
    """Numbers that never get any message."""


@blacklist_group.command("list")
@_op_command
def blacklist_list(spool, config):
    from modempool.operator.optout import OptOutList

    rows = OptOutList(spool.db, config.region).blacklist()
    return rows, lambda r: _op_table(r, ["number", "reason", "created_at"])


@blacklist_group.command("add")
@click.argument("numbers", nargs=-1, required=True)
@click.option("--reason", default="")
@_op_command
def blacklist_add(numbers, reason, spool, config):
    from modempool.operator.optout import OptOutList

    count = OptOutList(spool.db, config.region).add_to_blacklist(numbers, reason)
    return {"added": count}, f"{count} number(s) blacklisted"


@blacklist_group.command("remove")
@click.argument("number")
@_op_command
def blacklist_remove(number, spool, config):
    from modempool.operator.optout import OptOutList

    OptOutList(spool.db, config.region).remove_from_blacklist(number)
    return {"removed": number}, f"{number} removed from the blacklist"


@blacklist_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--reason", default="imported")
@click.option("--skip-bad", is_flag=True, help="Import the good rows even if some are rejected.")
@_op_options
@_op_errors
def blacklist_import(path, reason, skip_bad, config_path, db_path, as_json) -> None:
    """Add every number of a CSV/XLSX/TXT file (all-or-nothing)."""
    from modempool.operator.importers import ImportRejected
    from modempool.operator.optout import OptOutList

    spool, config = _op_open(config_path, db_path)
    try:
        report = OptOutList(spool.db, config.region).import_blacklist(path, reason=reason,
                                                                      skip_rejected=skip_bad)
    except ImportRejected as exc:
        _op_echo(as_json, exc.report.as_dict())
        raise click.ClickException(str(exc)) from None
    _op_echo(as_json, report.as_dict(), f"{report.imported} number(s) blacklisted")


@blacklist_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@_op_command
def blacklist_export(path, spool, config):
    from modempool.operator.optout import OptOutList

    count = OptOutList(spool.db, config.region).export(path, "blacklist")
    return {"path": path, "rows": count}, f"wrote {count} number(s) to {path}"


@main.group("autoreply")
def autoreply_group() -> None:
    """Auto-reply (自动回复) rules; config [[autoreply]] rules apply too.

    \b
    modempool autoreply add --keyword 营业时间 --reply "营业时间：每天 9:00-18:00"
    modempool autoreply add --pattern "^(价格|报价)" --reply "请致电 400-000-0000" --hours 09:00-18:00
    """


@autoreply_group.command("add")
@click.option("--reply", required=True, help="Reply text.")
@click.option("--keyword", "keywords", multiple=True, help="Text containing it matches (repeatable).")
@click.option("--pattern", default=None, help="Regular expression instead of keywords.")
@click.option("--sim", default=None, help="Only for messages received on this SIM.")
@click.option("--hours", default=None, help="Only in this local window, e.g. 09:00-18:00.")
@click.option("--cooldown", type=int, default=3600, show_default=True,
              help="Seconds before the same sender is answered again.")
@_op_command
def autoreply_add(reply, keywords, pattern, sim, hours, cooldown, spool, config):
    from modempool.operator.autoreply import AutoReplies

    rule = AutoReplies(spool.db).add(reply, keywords=keywords, pattern=pattern, sim=sim,
                                     hours=hours, cooldown=cooldown)
    return rule.as_dict(), f"rule {rule.name} added"


@autoreply_group.command("list")
@_op_command
def autoreply_list(spool, config):
    """Rules in the order they are tried (config first)."""
    from modempool.operator.autoreply import AutoReplies, rules_from_config

    rows = [r.as_dict() for r in rules_from_config(config) + AutoReplies(spool.db).rules()]
    return rows, lambda r: _op_table(
        r, ["rule", "keywords", "pattern", "reply", "sim", "hours", "cooldown"])


@autoreply_group.command("remove")
@click.argument("rule_id", type=int)
@_op_command
def autoreply_remove(rule_id, spool, config):
    from modempool.operator.autoreply import AutoReplies

    AutoReplies(spool.db).remove(rule_id)
    return {"removed": rule_id}, f"rule db:{rule_id} removed"


@autoreply_group.command("log")
@click.option("--limit", type=int, default=50, show_default=True)
@_op_command
def autoreply_log(limit, spool, config):
    """What was answered, and what the cooldown held back."""
    from modempool.operator.autoreply import AutoReplies

    rows = AutoReplies(spool.db).log(limit)
    return rows, lambda r: _op_table(r, ["created_at", "sender", "rule", "outcome", "message_id"])


def _op_history_options(func):
    for option in reversed([
        click.option("--number", default=None, help="Phone number."),
        click.option("--contact", default=None, help="Contact name (part of it) or group name."),
        click.option("--text", default=None, help="Text contains, e.g. 退订."),
        click.option("--since", default=None, help="From this local time, e.g. 2026-11-01."),
        click.option("--until", default=None, help="Before this local time."),
        click.option("--state", default=None, help="queued, sent, delivered, failed, ... or received."),
        click.option("--campaign", type=int, default=None, help="Campaign id."),
        click.option("--direction", type=click.Choice(["in", "out", "both"]), default="both"),
        click.option("--limit", type=int, default=1000, show_default=True),
    ]):
        func = option(func)
    return func


def _op_query(number, contact, text, since, until, state, campaign, direction, limit):
    """The history Query the `_op_history_options` describe."""
    from modempool.operator.history import Query

    return Query(number=number, contact=contact, text=text, since=_op_time(since, "--since"),
                 until=_op_time(until, "--until"), state=state, campaign=campaign,
                 direction=direction, limit=limit or None)


@main.group("history")
def history_group() -> None:
    """Search sent and received messages; export to CSV/XLSX.

    \b
    modempool history search --contact 张三 --since 2026-11-01
    modempool history search --text 退订 --direction in
    modempool history export 十一月.xlsx --since 2026-11-01 --until 2026-12-01
    """


@history_group.command("search")
@_op_history_options
@_op_command
def history_search(spool, config, **query):
    from modempool.operator.history import search

    rows = search(spool, _op_query(**query), config.region)
    return rows, lambda r: _op_table(r, ["time", "direction", "number", "name", "state", "sim", "text"])


@history_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@_op_history_options
@_op_command
def history_export(path, spool, config, **query):
    from modempool.operator.history import export

    count = export(spool, _op_query(**query), path, config.region)
    return {"path": path, "rows": count}, f"wrote {count} message(s) to {path}"


@history_group.command("threads")
@click.option("--unread", is_flag=True, help="Only conversations with unread replies.")
@click.option("--limit", type=int, default=100, show_default=True)
@_op_command
def history_threads(unread, limit, spool, config):
    """Conversations by contact (name, groups, unread count): modempool history threads --unread"""
    from modempool.operator.history import threads

    rows = threads(spool, unread_only=unread, limit=limit, region=config.region)
    flat = [{**r, "groups": ",".join(r["groups"])} for r in rows]
    return rows, lambda _: _op_table(
        flat, ["last_time", "number", "name", "groups", "unread", "messages", "last_received"])


@main.group("jobs")
def jobs_group() -> None:
    """Recurring sends: birthday greetings (生日祝福), daily and weekly notices; the daemon runs them.

    \b
    modempool jobs add 生日 --kind birthday --at 09:00 --text "{name}，祝您生日快乐！"
    modempool jobs add 周报 --kind weekly --weekday fri --at 17:00 --group 员工 --text "请提交本周周报"
    """


@jobs_group.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(["birthday", "daily", "weekly"]), required=True)
@click.option("--text", "template", required=True, help="Template, e.g. {name}生日快乐.")
@click.option("--at", default="09:00", show_default=True, help="Local time of day.")
@click.option("--weekday", default=None, help="Weekly jobs: mon..sun.")
@click.option("--to", "numbers", multiple=True)
@click.option("--group", "group_exprs", multiple=True, help="Groups as A+B-C.")
@_op_command
def jobs_add(name, kind, template, at, weekday, numbers, group_exprs, spool, config):
    from modempool.operator.recurring import Jobs

    job = Jobs(spool.db, config.region).add(name, kind, template, at=at, weekday=weekday,
                                            numbers=numbers, groups=_op_selection(group_exprs))
    return job.as_dict(), f"job {job.id} saved"


@jobs_group.command("list")
@_op_command
def jobs_list(spool, config):
    from modempool.operator.recurring import Jobs

    rows = [j.as_dict() for j in Jobs(spool.db, config.region).list()]
    return rows, lambda r: _op_table(r, ["id", "name", "kind", "at", "weekday", "last_run", "template"])


@jobs_group.command("remove")
@click.argument("job_id", type=int)
@_op_command
def jobs_remove(job_id, spool, config):
    from modempool.operator.recurring import Jobs

    Jobs(spool.db, config.region).remove(job_id)
    return {"removed": job_id}, f"job {job_id} removed"


@jobs_group.command("run")
@_op_command
def jobs_run(spool, config):
    """Queue whatever is due now (the daemon does this every minute by itself)."""
    from modempool.operator.recurring import run_due_jobs

    results = run_due_jobs(spool, config)
    return results, lambda r: click.echo(
        "\n".join(f"job {x['job']} {x['name']}: {x['enqueued']} queued" for x in r) or "nothing due")


@main.command("backup")
@click.argument("path", type=click.Path())
@click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
@_op_command
def backup_command(path, overwrite, spool, config):
    """Consistent copy of the database, safe while the daemon runs.

    \b
    modempool backup /backup/modempool-$(date +%F).db
    Restore: stop the daemon, copy the file over the spool path, delete *-wal and *-shm.
    """
    from modempool.operator.backup import backup

    source = spool.path
    spool.close()
    result = backup(source, path, overwrite=overwrite)
    return result.as_dict(), (f"backup written to {result.path} ({result.bytes} bytes, "
                              f"{result.tables.get('messages', 0)} messages)")


from modempool.commands.http import register as _register_http  # noqa: E402

_register_http(main)
from modempool.commands.box import register as _register_box  # noqa: E402

_register_box(main)
from modempool.commands.console import register as _register_console  # noqa: E402

_register_console(main)


from modempool.commands.spool import register as _register_spool  # noqa: E402

_register_spool(main)

if __name__ == "__main__":
    main()
