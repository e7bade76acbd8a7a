"""Commands for running modempool on a real box: `ussd` through the daemon, `discover`, `udev`,
`doctor`, `systemd-unit`. Each one translates arguments and prints; the library decides."""

from __future__ import annotations

import click

from modempool.commands.output import config_option, echo_json, print_table


@click.command("ussd")
@click.argument("sim")
@click.argument("code")
@config_option
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the network's answer.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def ussd_command(sim: str, code: str, config_path: str | None, timeout: float,
                 as_json: bool) -> None:
    """Run USSD CODE (such as *100#) on SIM through the running daemon; print the answer.

    The daemon owns the modems while it runs, so the query goes through it: no need to stop it.
    """
    from modempool import Pool
    from modempool.errors import PoolError

    try:
        with Pool.open(config_path) as pool:
            answer = pool.ussd(sim, code, timeout=timeout)
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(answer, pool.config.tz)
    else:
        click.echo(answer.text)


@click.command("discover")
@click.option("--ports", "pattern", default=None, metavar="GLOB",
              help="Look only at these ports (e.g. '/tmp/bank/m*' for a simulated bank); "
                   "default: /dev/serial/by-path, ttyUSB*, ttyACM*.")
@click.option("--json", "as_json", is_flag=True, help="Print every port as JSON.")
@click.option("--write-config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Write a modempool.toml for the modems found; an existing one only gets the "
                   "modems it lacks.")
@click.option("--write-udev", "udev_file", type=click.Path(dir_okay=False), default=None,
              help="Write udev rules naming each modem's USB slot.")
@click.option("--dry-run", is_flag=True, help="With --write-*: say what would change, write nothing.")
@click.option("--lock-dir", default=None, help="UUCP lock directory (default /run/lock).")
def discover_command(pattern: str | None, as_json: bool, config_file: str | None,
                     udev_file: str | None, dry_run: bool, lock_dir: str | None) -> None:
    """Find the modems: which ports answer AT, and which modem and SIM is behind each.

    Never enters a PIN and never touches a port another program (or the daemon) holds.
    """
    import asyncio
    from pathlib import Path

    from modempool.box import udev
    from modempool.box.discover import discover, propose_config
    from modempool.errors import PoolError
    from modempool.private_files import create_private

    found = asyncio.run(discover(pattern, lock_dir=lock_dir))
    if not found.ports:
        click.echo("no serial ports found: are the modems plugged in? A USB stick still in CD-ROM "
                   "mode needs usb_modeswitch (`lsusb` shows it); other ports: --ports GLOB",
                   err=True)
    if as_json:
        echo_json(found.to_dict())
    else:
        print_table(f"{len(found.modems)} modem(s) on {len(found.ports)} port(s)",
               ["name", "port", "role", "modem", "IMEI", "ICCID", "IMSI", "operator", "number",
                "SIM", "USB slot"],
               [(p.name, p.port, p.role if p.role != "busy" else f"busy: {p.busy_by}",
                 " ".join(x for x in (p.manufacturer, p.model) if x), p.imei, p.iccid, p.imsi,
                 p.operator, p.msisdn, p.sim, p.usb_path) for p in found.ports], width=200)
    if config_file:
        try:
            proposal = propose_config(found, Path(config_file))
        except PoolError as exc:
            raise click.ClickException(str(exc)) from None
        for modem in proposal.added:
            click.echo(f"+ [[modem]] {modem.name} = {modem.port}", err=as_json)
        for name in proposal.missing:
            click.echo(f"? {name}: its port was not found now (left in {config_file})", err=as_json)
        if not proposal.changed:
            click.echo(f"no change: every modem found is already in {config_file}", err=as_json)
        elif not dry_run:
            create_private(config_file)   # new: 0600 (PINs go there); else its mode kept
            Path(config_file).write_text(proposal.text, encoding="utf-8")
            click.echo(f"wrote {config_file}", err=as_json)
    if udev_file:
        text = udev.rules([(p.name, p.usb_path) for p in found.modems if p.usb_path])
        if not dry_run:
            Path(udev_file).write_text(text, encoding="utf-8")
            click.echo(f"wrote {udev_file}: install it with `modempool udev --install` or copy it "
                       f"to /etc/udev/rules.d/", err=as_json)


@click.command("udev")
@config_option
@click.option("--install", is_flag=True,
              help="Write the rules to /etc/udev/rules.d/ and reload udev (as root).")
@click.option("--rules-dir", type=click.Path(file_okay=False), default=None,
              help="Where --install writes (default /etc/udev/rules.d).")
def udev_command(config_path: str | None, install: bool, rules_dir: str | None) -> None:
    """Print (or --install) udev rules: stable names by USB slot, group dialout, ModemManager
    kept away. Modems of the config on /dev/serial/by-path ports get /dev/modempool/<name>."""
    from pathlib import Path

    from modempool.box import udev
    from modempool.box.discover import usb_path_of
    from modempool.config import load_config
    from modempool.errors import PoolError

    try:
        config = load_config(config_path) if config_path or _default_config_exists() else None
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None
    slots = [(m.name, usb_path_of(Path(m.port).name)) for m in (config.modems if config else ())
             if m.port.startswith("/dev/serial/by-path/")]
    text = udev.rules(slots)
    if not install:
        click.echo(text, nl=False)
        return
    try:
        target = Path(rules_dir) if rules_dir else udev.RULES_DIR
        for line in udev.install(text, rules_dir=target, reload=target == udev.RULES_DIR):
            click.echo(line)
    except OSError as exc:
        raise click.ClickException(f"cannot install the rules: {exc.strerror or exc} "
                                   "(run as root: sudo modempool udev --install)") from None


@click.command("doctor")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor_command(config_path: str | None, as_json: bool) -> None:
    """Check this box for what stops a modem bank: ModemManager, group dialout, ports held by
    other programs, udev rules, the spool's disk, the clock, missing ports, refused PINs.

    Exits 1 when something blocks sending."""
    from modempool.box.doctor import Level, diagnose
    from modempool.config import load_config
    from modempool.errors import PoolError

    try:
        config = load_config(config_path)
        spool = config.open_spool() if config.spool_path.exists() else None
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None
    findings = diagnose(config, spool=spool)
    if as_json:
        echo_json([f.to_dict() for f in findings])
    else:
        marks = {Level.OK: "ok     ", Level.WARNING: "warning", Level.PROBLEM: "PROBLEM"}
        for finding in findings:
            click.echo(f"{marks[finding.level]}  {finding.check:<13} {finding.message}")
            if finding.fix and finding.level is not Level.OK:
                click.echo(f"{'':<23}→ {finding.fix}")
        blocking = sum(f.blocking for f in findings)
        click.echo(f"{blocking} problem(s) block sending" if blocking else
                   "nothing blocks sending")
    if any(f.blocking for f in findings):
        raise SystemExit(1)


@click.command("systemd-unit")
@config_option
@click.option("--user", default="modempool", show_default=True, help="The service's own user.")
@click.option("--install", is_flag=True,
              help="Write it to /etc/systemd/system/modempool.service and reload systemd.")
@click.option("--unit-dir", type=click.Path(file_okay=False), default=None,
              help="Where --install writes (default /etc/systemd/system).")
def systemd_unit_command(config_path: str | None, user: str, install: bool,
                         unit_dir: str | None) -> None:
    """Print (or --install) a systemd unit for `modempool run`: Type=notify with a watchdog,
    restart on failure, its own user in group dialout, a hardened sandbox."""
    from pathlib import Path

    from modempool.box import systemd
    from modempool.config import load_config
    from modempool.errors import PoolError

    try:
        config = load_config(config_path)
    except PoolError as exc:
        raise click.ClickException(str(exc)) from None
    if config.path is None:
        raise click.ClickException("give the config the service will use: --config "
                                   "/etc/modempool/modempool.toml")
    text = systemd.unit(systemd.settings_for(config, user=user))
    if not install:
        click.echo(text, nl=False)
        return
    target = Path(unit_dir) if unit_dir else systemd.UNIT_DIR
    try:
        for line in systemd.install(text, unit_dir=target, reload=target == systemd.UNIT_DIR):
            click.echo(line)
    except OSError as exc:
        raise click.ClickException(f"cannot install the unit: {exc.strerror or exc} "
                                   "(run as root: sudo modempool systemd-unit --install)") from None


def _default_config_exists() -> bool:
    from modempool.config import default_paths

    return any(path.is_file() for path in default_paths())


COMMANDS = [ussd_command, discover_command, udev_command, doctor_command, systemd_unit_command]


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    for command in COMMANDS:
        group.add_command(command)
