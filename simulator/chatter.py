"""Vendor URCs a modem prints by itself while it idles (Huawei `^RSSI`, `^MODE`, `^BOOT`).

What comes and how often is data in each personality (`periodic_urcs`); the vendor's switch
(`AT^CURC=0`) silences it. One timer per line and modem: an idle bank stays idle.
"""

from __future__ import annotations

import asyncio

from simulator.modem import VirtualModem

SIGNAL_DRIFT = "{signal}"  # the line that means "the signal level changes"


class Chatter:
    """Schedules one modem's periodic URCs; `scale` multiplies the intervals (0: none)."""

    def __init__(self, modem: VirtualModem, loop: asyncio.AbstractEventLoop,
                 scale: float = 1.0) -> None:
        self.modem, self.loop, self.scale = modem, loop, scale
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def start(self) -> None:
        if self.scale <= 0:
            return
        for position in range(len(self.modem.personality.periodic_urcs)):
            self._schedule(position)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _schedule(self, position: int) -> None:
        _, every = self.modem.personality.periodic_urcs[position]
        wait = every * self.scale * self.modem.rng.uniform(0.5, 1.5)
        self._timers[position] = self.loop.call_later(wait, self._fire, position)

    def _fire(self, position: int) -> None:
        modem = self.modem
        line, _ = modem.personality.periodic_urcs[position]
        if line == SIGNAL_DRIFT:
            step = modem.rng.choice((-3, -2, -1, 1, 2, 3))
            modem.set_signal(min(31, max(2, modem.sim.rssi + step)))
        else:
            modem.vendor_urc(line.format(rssi=modem.sim.rssi, imei=modem.imei))
        self._schedule(position)
