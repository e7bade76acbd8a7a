"""`modempool contacts ...` and `modempool groups ...`: the address book (通讯录) and its groups,
through `modempool.Pool`."""

from __future__ import annotations

import click

from modempool.commands.shell import Pairs, pool_command

_MAP = click.option("--map", "mapping", multiple=True, type=Pairs("TARGET=COLUMN, e.g. number=手机"),
                    metavar="TARGET=COLUMN",
                    help="Column mapping: number, name, birthday, groups, notes (e.g. number=手机).")


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
@_MAP
@click.option("--group", "groups", multiple=True, help="Also put every imported contact in GROUP.")
@click.option("--encoding", default=None, help="Force an encoding (default: UTF-8/BOM/GBK detected).")
@click.option("--sheet", default=None, help="XLSX sheet name (default: the first).")
@click.option("--skip-bad", is_flag=True, help="Import the good rows even if some are rejected.")
@click.option("--dry-run", is_flag=True, help="Check the file, store nothing.")
@pool_command()
def contacts_import(pool, out, path, mapping, groups, encoding, sheet, skip_bad, dry_run) -> None:
    """Import CSV, XLSX or TXT; any bad row and nothing is imported (unless --skip-bad).

    \b
    Every rejected row is listed with its line and reason.
    modempool contacts import 学生家长.csv --group 三年级 --map number=联系电话
    """
    from modempool.operator.importers import ImportRejected

    try:
        report = pool.import_contacts(path, mapping=dict(mapping), groups=groups,
                                      encoding=encoding, sheet=sheet, skip_rejected=skip_bad,
                                      dry_run=dry_run)
    except ImportRejected as exc:
        out.result(exc.report)
        if not out.as_json:
            click.echo(f"{len(exc.report.rejected)} row(s) rejected, nothing imported:", err=True)
            click.echo(exc.report.describe_rejected(), err=True)
        raise SystemExit(1) from None
    count = len(report.accepted) if dry_run else report.imported
    out.result(report, f"{'checked' if dry_run else 'imported'} {count} contact(s) from "
                       f"{report.path} ({report.format}, {report.encoding or 'xlsx'})"
               + (f"; {len(report.rejected)} rejected:\n" + report.describe_rejected()
                  if report.rejected else ""))


@contacts_group.command("add")
@click.argument("number")
@click.option("--name", default="", help="Name (姓名).")
@click.option("--field", "fields", multiple=True, type=Pairs("KEY=VALUE, e.g. 班级=一班"),
              metavar="KEY=VALUE", help="Extra field, e.g. 班级=一班.")
@click.option("--birthday", default=None, help="1990-05-17 or 05-17.")
@click.option("--notes", default="")
@click.option("--group", "groups", multiple=True, help="Group(s) to join.")
@pool_command()
def contacts_add(pool, out, number, name, fields, birthday, notes, groups) -> None:
    """Add or update one contact: modempool contacts add 13800138000 --name 张三 --group 员工"""
    contact = pool.save_contact(number, name, fields=dict(fields), birthday=birthday,
                                notes=notes, groups=groups)
    out.result(contact, f"{contact.number} {contact.name} saved")


@contacts_group.command("remove")
@click.argument("number")
@pool_command()
def contacts_remove(pool, out, number) -> None:
    """Delete a contact."""
    pool.remove_contact(number)
    out.result({"removed": number}, f"removed {number}")


@contacts_group.command("list")
@click.option("--group", default=None, help="Only this group's members.")
@click.option("--search", default=None, help="Match name, number or notes (e.g. 张).")
@pool_command()
def contacts_list(pool, out, group, search) -> None:
    """List contacts with their groups: modempool contacts list --group 家长"""
    contacts = pool.contacts.list(group=group, search=search)
    out.result(contacts, lambda rows: out.table(
        rows, ["number", "name", "groups", "birthday", "fields"]))


@contacts_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--group", default=None, help="Only this group's members.")
@click.option("--encoding", default="utf-8-sig", show_default=True,
              help="CSV encoding (gbk for old Excel versions).")
@pool_command()
def contacts_export(pool, out, path, group, encoding) -> None:
    """Export to CSV or XLSX (by extension): modempool contacts export 通讯录.xlsx"""
    count = pool.export_contacts(path, group=group, encoding=encoding)
    out.result({"path": path, "contacts": count}, f"wrote {count} contact(s) to {path}")


@click.group("groups")
def groups_group() -> None:
    """Contact groups (分组); combine them at send time as A+B-C.

    \b
    modempool groups create 教师
    modempool groups add 教师 13800138000 13900139000
    modempool groups show "家长+教师-毕业班"
    """


@groups_group.command("list")
@pool_command()
def groups_list(pool, out) -> None:
    """Every group with its member count."""
    out.result(pool.groups(), lambda rows: out.table(
        rows, ["name", "members", "description"]))


@groups_group.command("create")
@click.argument("name")
@click.option("--description", default="")
@pool_command()
def groups_create(pool, out, name, description) -> None:
    """Create a group."""
    pool.create_group(name, description)
    out.result({"created": name}, f"group {name} ready")


@groups_group.command("delete")
@click.argument("name")
@pool_command()
def groups_delete(pool, out, name) -> None:
    """Delete a group (its contacts stay)."""
    pool.delete_group(name)
    out.result({"deleted": name}, f"group {name} deleted")


@groups_group.command("rename")
@click.argument("name")
@click.argument("new_name")
@pool_command()
def groups_rename(pool, out, name, new_name) -> None:
    """Give a group another name (its members stay)."""
    pool.rename_group(name, new_name)
    out.result({"renamed": name, "to": new_name.strip()}, f"group {name} is now {new_name.strip()}")


@groups_group.command("add")
@click.argument("name")
@click.argument("numbers", nargs=-1, required=True)
@pool_command()
def groups_add(pool, out, name, numbers) -> None:
    """Put existing contacts in a group: modempool groups add 教师 13800138000"""
    count = pool.add_to_group(name, numbers)
    out.result({"group": name, "added": count}, f"{count} contact(s) in {name}")


@groups_group.command("remove")
@click.argument("name")
@click.argument("numbers", nargs=-1, required=True)
@pool_command()
def groups_remove(pool, out, name, numbers) -> None:
    """Take contacts out of a group."""
    count = pool.remove_from_group(name, numbers)
    out.result({"group": name, "removed": count}, f"{count} contact(s) removed from {name}")


@groups_group.command("show")
@click.argument("expression")
@pool_command()
def groups_show(pool, out, expression) -> None:
    """Members of a group expression, each once: modempool groups show "家长+教师-毕业班" """
    def human(rows):
        out.table(rows, ["number", "name", "groups"])
        click.echo(f"{len(rows)} contact(s)")
    out.result(pool.select_contacts(expression), human)


def register(group: click.Group) -> None:
    """Add this module's commands to the `modempool` group."""
    for command in (contacts_group, groups_group):
        group.add_command(command)
