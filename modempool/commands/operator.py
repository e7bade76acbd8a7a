"""The operator commands (contacts, groups, campaign, optout, autoreply, history, jobs, backup):
each parses its options, makes front-door calls and prints the result."""

from __future__ import annotations

import click

from modempool.commands.output import (config_option, echo_json, json_option, local_time,
                                       print_table)


# Most operator commands are `@_op_command` bodies: they take their own options plus the open
# `spool` and `config`, call the library and return `(data, human)`. The few whose output is more
# than one result (import rejections, `--follow`) use `_op_options`, `_op_errors` and `_op_open`.


def _op_options(func):
    """--config, --db and --json for every operator command."""
    func = json_option(func)
    func = click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
                        help="Spool database file (default: the one the config names).")(func)
    return config_option(func)


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
    if as_json:
        echo_json(data)
    elif human is not None:
        human(data) if callable(human) else click.echo(human)


def _op_table(rows, columns) -> None:
    print_table("", columns, [[row.get(c) for c in columns] for row in rows])


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


@click.group("contacts")
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


@click.group("groups")
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


@click.group("campaign")
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


@click.group("optout")
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


@click.group("autoreply")
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


@click.group("history")
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
    shown = [{**r, "time": local_time(r["time"], config.tz)} for r in rows]   # local, as inbox
    return rows, lambda _: _op_table(
        shown, ["time", "direction", "number", "name", "state", "sim", "text"])


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


@click.group("jobs")
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

    job = Jobs(spool.db, config.region, config.tz).add(name, kind, template, at=at, weekday=weekday,
                                            numbers=numbers, groups=_op_selection(group_exprs))
    return job.as_dict(), f"job {job.id} saved"


@jobs_group.command("list")
@_op_command
def jobs_list(spool, config):
    from modempool.operator.recurring import Jobs

    rows = [j.as_dict() for j in Jobs(spool.db, config.region, config.tz).list()]
    return rows, lambda r: _op_table(r, ["id", "name", "kind", "at", "weekday", "last_run", "template"])


@jobs_group.command("remove")
@click.argument("job_id", type=int)
@_op_command
def jobs_remove(job_id, spool, config):
    from modempool.operator.recurring import Jobs

    Jobs(spool.db, config.region, config.tz).remove(job_id)
    return {"removed": job_id}, f"job {job_id} removed"


@jobs_group.command("run")
@_op_command
def jobs_run(spool, config):
    """Queue whatever is due now (the daemon does this every minute by itself)."""
    from modempool.operator.recurring import run_due_jobs

    results = run_due_jobs(spool, config)
    return results, lambda r: click.echo(
        "\n".join(f"job {x['job']} {x['name']}: {x['enqueued']} queued" for x in r) or "nothing due")


@click.command("backup")
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


COMMANDS = [contacts_group, groups_group, campaign_group, optout_group, autoreply_group, history_group, jobs_group, backup_command]


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    for command in COMMANDS:
        group.add_command(command)
