"""`modempool sim ...`: a bank of simulated modems on pseudo-terminals."""

from __future__ import annotations

import click


@click.group("sim")
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


COMMANDS = [sim_group]


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    for command in COMMANDS:
        group.add_command(command)
