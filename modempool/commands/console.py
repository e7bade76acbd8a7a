"""`modempool accounts passwd NAME`: the web console's sign-in password of an account.

The console takes an account's API key or this password; only a scrypt hash is stored."""

from __future__ import annotations

import click

from modempool.commands.output import config_option
from modempool.commands.shell import open_pool


@click.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input (for scripts).")
@config_option
def accounts_passwd(name, password_stdin, config_path) -> None:
    """Set the console password of account NAME (asked twice, never shown)."""
    from modempool.sessions import Sessions

    if password_stdin:
        password = click.get_text_stream("stdin").readline().rstrip("\r\n")
    else:
        password = click.prompt("new password", hide_input=True, confirmation_prompt=True)
    with open_pool(config_path) as pool:
        Sessions(pool.spool).set_password(name, password)
    click.echo(f"console password of {name} set")


def register(main: click.Group) -> None:
    """Add `passwd` to the `accounts` group (registered by commands/http.py)."""
    main.commands["accounts"].add_command(accounts_passwd)
