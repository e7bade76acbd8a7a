"""Issue 12: an open port is ours alone (flock and TIOCEXCL), so two drivers never share a modem."""

from __future__ import annotations

import pytest

from at_commands import Modem
from at_commands.port_exclusivity import PortInUse, is_exclusive


async def test_an_open_port_is_exclusive_and_a_second_open_is_refused(bank):
    port = bank.devices[0]
    first = Modem(port, name="first")
    await first.open()
    try:
        assert is_exclusive(first.channel.fileno())
        second = Modem(port, name="second")
        with pytest.raises(PortInUse, match="is busy: another process holds it"):
            await second.open()
        assert not second.channel.is_open
        assert (await first.query("signal")) is not None   # the owner still talks to its modem
    finally:
        await first.close()
    again = Modem(port, name="again")                       # closing gave the port back
    await again.open()
    await again.close()
