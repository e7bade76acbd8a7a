"""`modempool jobs ...` (recurring sends) and `modempool backup`, through `modempool.Pool`."""

from __future__ import annotations

import click

from modempool.commands.shell import pool_command


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
@click.option("--at", default="09:00", show_default=True,
              help="Time of day, local to [pool] timezone.")
@click.option("--weekday", default=None, help="Weekly jobs: mon..sun.")
@click.option("--to", "numbers", multiple=True)
@click.option("--group", "groups", multiple=True, help="Groups as A+B-C.")
@pool_command()
def jobs_add(pool, out, name, kind, template, at, weekday, numbers, groups) -> None:
    """Save a recurring job."""
    job = pool.add_job(name, kind, template, at=at, weekday=weekday, numbers=numbers,
                       groups=groups)
    out.result(job, f"job {job.id} saved")


@jobs_group.command("list")
@pool_command()
def jobs_list(pool, out) -> None:
    """Every job, with the day it last ran."""
    out.result(pool.jobs.list(), lambda rows: out.table(
        rows, ["id", "name", "kind", "at", "weekday", "last_run", "template"]))


@jobs_group.command("remove")
@click.argument("job_id", type=int)
@pool_command()
def jobs_remove(pool, out, job_id) -> None:
    """Delete a job."""
    pool.remove_job(job_id)
    out.result({"removed": job_id}, f"job {job_id} removed")


@jobs_group.command("run")
@pool_command()
def jobs_run(pool, out) -> None:
    """Queue whatever is due now (the daemon does this every minute by itself)."""
    out.result(pool.run_due_jobs(), lambda rows: click.echo(
        "\n".join(f"job {run.job} {run.name}: {run.enqueued} queued"
                  + (f" (not sent: sensitive words {', '.join(run.sensitive)})"
                     if run.sensitive else "") for run in rows)
        or "nothing due"))


@click.command("backup")
@click.argument("path", type=click.Path())
@click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
@pool_command()
def backup_command(pool, out, path, overwrite) -> None:
    """Consistent copy of the database, safe while the daemon runs.

    \b
    modempool backup /backup/modempool-$(date +%F).db
    Restore: stop the daemon, copy the file over the spool path, delete *-wal and *-shm.
    """
    result = pool.backup(path, overwrite=overwrite)
    out.result(result, f"backup written to {result.path} ({result.bytes} bytes, "
                       f"{result.tables.get('messages', 0)} messages)")


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    for command in (jobs_group, backup_command):
        group.add_command(command)
