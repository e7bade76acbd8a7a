"""The `modempool` command: the entry point. Its commands live one module per subject in
`modempool/commands/`, each imported only when its command runs (commands/catalog.py); each
parses its options, calls the library (`modempool.Pool`) and prints the result."""

from __future__ import annotations

import click

from modempool.commands.catalog import Commands


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modempool")
def main() -> None:
    """modempool: drive a bank of GSM modems (短信猫) to send and receive SMS."""


if __name__ == "__main__":
    main()
