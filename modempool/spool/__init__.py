"""The durable spool (the storage engine): messages, parts, leases, inbound, reports, SIMs."""

from modempool.spool.store import *  # noqa: F401,F403
from modempool.spool.store import __all__  # noqa: F401
