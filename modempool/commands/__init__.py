"""The click commands of `modempool`, one module per subject (cli.py registers them)."""
