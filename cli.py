"""The `modempool` command: a thin click shell over the libraries."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modempool")
def main() -> None:
    """modempool: drive a bank of GSM modems (短信猫) to send and receive SMS."""


# ---- section: pdu (codec) ----

# ---- section: sim (simulator) ----

# ---- section: probe (one modem) ----

# ---- section: pool (run, send, status, queue, inbox, demo) ----

# ---- section: operator (contacts, groups, campaign, optout, autoreply, history, backup) ----


if __name__ == "__main__":
    main()
