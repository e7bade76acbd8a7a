"""Sending: the dispatcher, the sending rule, SIM choice and limits, one task per modem, the daemon."""
