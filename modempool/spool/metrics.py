"""`spool.metrics`: what the Prometheus scrape asks the spool (issue 15), as named questions.

A scrape comes every few seconds while the spool grows to millions of messages, so each
answer is cheap: the engines keep the per-SIM outcomes and the enqueue-to-sent histogram by
triggers in the writing transaction (`METRIC_COUNTS` in sqlite_counts.py, postgres_counts.py),
and a scrape reads no message rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from modempool.spool.engine import Engine
from modempool.spool.schema import SEND_LATENCY_BOUNDS


@dataclass(frozen=True, slots=True)
class SendLatency:
    """Messages by time from enqueue to sent: `counts[i]` took at most `bounds[i]` seconds
    (and more than the bound before); the last count is over every bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    seconds: float

    @property
    def cumulative(self) -> list[int]:
        """Counts at or below each bound, then the total (Prometheus' `le` buckets)."""
        out, running = [], 0
        for count in self.counts:
            running += count
            out.append(running)
        return out


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def sim_outcomes(self) -> dict[tuple[str, str], int]:
        """Finished messages (sent, delivered, failed, ambiguous) by (SIM, state)."""
        return {key: n for key, n in self.engine.sim_outcomes().items() if n}

    def sim_outcomes_reached(self) -> dict[tuple[str, str], int]:
        """Messages that reached each finished state, by (SIM, state); only ever rises (a
        message sent then delivered is in both), so that Prometheus' rate() holds."""
        return self.engine.sim_outcomes_reached()

    def send_latency(self) -> SendLatency:
        """The enqueue-to-sent histogram of every message sent."""
        counts = [0] * (len(SEND_LATENCY_BOUNDS) + 1)
        total = 0.0
        for bucket, n, seconds in self.engine.send_latency():
            counts[bucket] += n
            total += seconds
        return SendLatency(tuple(float(b) for b in SEND_LATENCY_BOUNDS), tuple(counts), total)
