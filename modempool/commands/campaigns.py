"""`modempool campaign ...`: bulk sending (群发) through `modempool.Pool`."""

from __future__ import annotations

import click

from modempool.commands.shell import Pairs, TimeText, pool_command


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
@click.option("--text", "template", default=None,
              help="Template; {name} or any column, e.g. {班级}.")
@click.option("--from-template", "saved", default=None, metavar="NAME",
              help="A saved template's text (and kind): see `campaign templates`.")
@click.option("--to", "numbers", multiple=True, help="Numbers (repeat, or comma-separated).")
@click.option("--group", "groups", multiple=True, help="Groups as A+B-C (repeatable).")
@click.option("--sheet", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV/XLSX of recipients; its columns are template fields.")
@click.option("--map", "mapping", multiple=True, type=Pairs("TARGET=COLUMN, e.g. number=手机"),
              metavar="TARGET=COLUMN", help="Sheet column mapping.")
@click.option("--kind", type=click.Choice(["marketing", "notice"]), default=None,
              help="Marketing (the default) keeps quiet hours and gets the signature.")
@click.option("--start", type=TimeText(), default=None,
              help="Start time, e.g. '2026-12-01 09:00' or +1h ([pool] timezone).")
@click.option("--end", type=TimeText(), default=None, help="Messages not sent by then expire.")
@click.option("--quiet-hours/--no-quiet-hours", default=None,
              help="Hold sending in quiet hours (default: on for marketing).")
@click.option("--rate", type=float, default=None, help="At most N messages per minute.")
@click.option("--sim", "sims", multiple=True, help="Only these SIMs (repeatable).")
@click.option("--priority", type=int, default=-1, show_default=True)
@pool_command()
def campaign_create(pool, out, name, template, saved, numbers, groups, sheet, mapping, kind, start,
                    end, quiet_hours, rate, sims, priority) -> None:
    """Save a campaign (not sent until `campaign start`)."""
    campaign = pool.create_campaign(
        name, template, from_template=saved, numbers=numbers, groups=groups, sheet=sheet, mapping=dict(mapping),
        kind=kind, start=start, end=end, quiet_hours=quiet_hours, rate_per_minute=rate,
        sims=sims, priority=priority)
    out.result(campaign, f"campaign {campaign.id} saved; check it with: "
                         f"modempool campaign preview {campaign.id}")


@campaign_group.command("list")
@pool_command()
def campaign_list(pool, out) -> None:
    """Saved campaigns and their states."""
    out.result(pool.campaign_overview(), lambda rows: out.table(
        rows, ["id", "name", "kind", "state", "total", "pending", "sent", "delivered", "failed"]))


@campaign_group.command("preview")
@click.argument("campaign_id", type=int)
@click.option("--sample", type=click.IntRange(min=0), default=3, show_default=True, help="Rendered messages to show.")
@pool_command()
def campaign_preview(pool, out, campaign_id, sample) -> None:
    """Recipients after dedupe and opt-outs, total parts (cost), samples, problems."""
    def human(p):
        click.echo(f"campaign {p.campaign} {p.name}: {p.recipients} recipient(s), "
                   f"{p.total_parts} SMS part(s); removed {p.duplicates_removed} duplicate(s), "
                   f"{p.opted_out_removed} opted out")
        click.echo(f"quiet hours: {'on' if p.quiet_hours else 'off'}; "
                   f"rate: {p.rate_per_minute or 'no cap'}/min; SIMs: {list(p.sims or ()) or 'any'}")
        for s in p.samples:
            click.echo(f"  → {s.to} {s.name} ({s.parts} part(s)): {s.text}")
        for problem in p.problems:
            click.echo(f"  ! {problem}")
        click.echo("ready to start" if p.can_start else "fix the problems, or start with --skip-problems")
    out.result(pool.preview_campaign(campaign_id, sample=sample), human)


def _follow(pool, campaign_id):
    """Live progress until nothing is pending (Ctrl-C stops watching, not the campaign)."""
    import time

    from rich.console import Console
    from rich.live import Live
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    def view(p):
        table = Table.grid(padding=(0, 2))
        table.add_row(f"[bold]campaign {p.campaign}[/] {p.name}", p.state)
        table.add_row(ProgressBar(total=max(p.total, 1), completed=p.done, width=40),
                      f"{p.done}/{p.total}")
        table.add_row(f"sent {p.counts['sent']}  delivered {p.counts['delivered']}  "
                      f"failed {p.counts['failed']}  pending {p.pending} (held {p.held})",
                      f"{p.rate_per_minute}/min  ETA "
                      + (f"{p.eta_seconds // 60}m{p.eta_seconds % 60:02d}s"
                         if p.eta_seconds is not None else "-"))
        return table

    current = pool.campaign_progress(campaign_id)
    try:
        with Live(view(current), console=Console(), refresh_per_second=4) as live:
            while current.pending and current.state == "running":
                time.sleep(0.5)   # a display refresh, not a synchronisation
                current = pool.campaign_progress(campaign_id)
                live.update(view(current))
    except KeyboardInterrupt:
        pass
    return current


@campaign_group.command("start")
@click.argument("campaign_id", type=int)
@click.option("--skip-problems", is_flag=True, help="Leave out invalid numbers and rows missing fields.")
@click.option("--follow", is_flag=True, help="Show live progress until the campaign is done.")
@pool_command()
def campaign_start(pool, out, campaign_id, skip_problems, follow) -> None:
    """Queue the campaign; run it again after a crash to finish it without duplicates.

    Sending is done by the daemon (`modempool run`).
    """
    from modempool.operator.campaigns import CampaignBlocked

    try:
        result = pool.start_campaign(campaign_id, skip_problems=skip_problems)
    except CampaignBlocked as exc:
        out.result({"campaign": campaign_id, "started": False, "problems": exc.problems})
        raise click.ClickException(str(exc)) from None
    out.result(result, f"campaign {campaign_id}: {result.enqueued} message(s) queued, "
                       f"{result.already_enqueued} already queued before")
    if follow:
        out.result(_follow(pool, campaign_id))


@campaign_group.command("progress")
@click.argument("campaign_id", type=int)
@click.option("--follow", is_flag=True, help="Live display until done.")
@pool_command()
def campaign_progress(pool, out, campaign_id, follow) -> None:
    """Sent / failed / pending, rate and ETA."""
    progress = _follow(pool, campaign_id) if follow else pool.campaign_progress(campaign_id)
    out.result(progress, lambda p: click.echo(
        f"campaign {p.campaign} {p.state}: {p.done}/{p.total} done, sent {p.counts['sent']}, "
        f"delivered {p.counts['delivered']}, failed {p.counts['failed']}, pending {p.pending}, "
        f"{p.rate_per_minute}/min" + (f"; waiting: {p.waiting()}" if p.waiting() else "")))


@campaign_group.command("pause")
@click.argument("campaign_id", type=int)
@pool_command()
def campaign_pause(pool, out, campaign_id) -> None:
    """Hold the campaign's queued messages."""
    campaign = pool.pause_campaign(campaign_id)
    out.result(campaign, f"campaign {campaign_id}: {campaign.state.value}")


@campaign_group.command("resume")
@click.argument("campaign_id", type=int)
@pool_command()
def campaign_resume(pool, out, campaign_id) -> None:
    """Release a paused campaign."""
    campaign = pool.resume_campaign(campaign_id)
    out.result(campaign, f"campaign {campaign_id}: {campaign.state.value}")


@campaign_group.command("cancel")
@click.argument("campaign_id", type=int)
@pool_command()
def campaign_cancel(pool, out, campaign_id) -> None:
    """Cancel the campaign and its queued messages."""
    dropped = pool.cancel_campaign(campaign_id)
    out.result({"campaign": campaign_id, "cancelled": dropped},
               f"campaign {campaign_id}: cancelled, {dropped} queued message(s) dropped")


@campaign_group.command("rerun")
@click.argument("campaign_id", type=int)
@click.option("--name", default=None)
@pool_command()
def campaign_rerun(pool, out, campaign_id, name) -> None:
    """Copy a saved campaign into a new draft, to send it again."""
    campaign = pool.rerun_campaign(campaign_id, name)
    out.result(campaign, f"campaign {campaign.id} created from {campaign_id}")


@campaign_group.command("report")
@click.argument("campaign_id", type=int)
@click.option("--export", "export_path", type=click.Path(dir_okay=False), default=None,
              help="Write the per-recipient report to CSV or XLSX.")
@pool_command()
def campaign_report(pool, out, campaign_id, export_path) -> None:
    """Delivered, failed with reasons, replies, opt-outs: modempool campaign report 1 --export 报告.xlsx"""
    def human(report):
        s = report.summary
        click.echo(f"campaign {campaign_id} {report.campaign.name}: {s.recipients} message(s); "
                   f"delivered {s.delivered}, sent {s.sent}, failed {s.failed}, "
                   f"pending {s.queued + s.sending}, cancelled {s.cancelled}, "
                   f"expired {s.expired}, ambiguous {s.ambiguous}")
        click.echo(f"replies {s.replies} from {s.repliers} recipient(s); opt-outs {s.opt_outs}; "
                   f"stopped at send (opted out or blacklisted) {s.stopped_at_send}")
        for reason, count in s.failure_reasons.items():
            click.echo(f"  failed {count}: {reason}")
        if report.exported is not None:
            click.echo(f"wrote {report.exported.rows} row(s) to {report.exported.path}")
    out.result(pool.campaign_report(campaign_id, export_to=export_path), human)



@campaign_group.group("templates")
def templates_group() -> None:
    """Saved templates (短信模板) for the next campaign: `campaign create --from-template NAME`.

    \b
    modempool campaign templates add 家长会 --text "{name}家长您好：周五{时间}开家长会。" --kind notice
    modempool campaign templates list
    modempool campaign templates remove 家长会
    """


@templates_group.command("list")
@pool_command(create=False)
def templates_list(pool, out) -> None:
    """Every saved template with the fields it needs."""
    out.result(pool.templates.list(), lambda rows: out.table(
        rows, ["id", "name", "kind", "fields", "text"]))


@templates_group.command("add")
@click.argument("name")
@click.option("--text", required=True, help="Template; {name} or any column, e.g. {班级}.")
@click.option("--kind", type=click.Choice(["marketing", "notice"]), default="notice",
              show_default=True)
@pool_command()
def templates_add(pool, out, name, text, kind) -> None:
    """Save a template."""
    saved = pool.add_template(name, text, kind)
    out.result(saved, f"template {saved.name} saved (id {saved.id})")


@templates_group.command("edit")
@click.argument("name")
@click.option("--rename", default=None, help="A new name.")
@click.option("--text", default=None)
@click.option("--kind", type=click.Choice(["marketing", "notice"]), default=None)
@pool_command()
def templates_edit(pool, out, name, rename, text, kind) -> None:
    """Change a template's name, text or kind (campaigns made from it keep theirs)."""
    changed = pool.edit_template(name, rename=rename, text=text, kind=kind)
    out.result(changed, f"template {changed.name} saved")


@templates_group.command("remove")
@click.argument("name")
@pool_command()
def templates_remove(pool, out, name) -> None:
    """Delete a template (campaigns made from it keep their text)."""
    saved = pool.remove_template(name)
    out.result({"removed": saved.name}, f"template {saved.name} removed")

def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    group.add_command(campaign_group)
