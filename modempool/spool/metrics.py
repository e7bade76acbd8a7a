"""`spool.metrics`: what the Prometheus scrape asks the spool (issue 15), as named questions.

A scrape comes every few seconds while the spool grows to millions of messages, so each
answer is cheap: SQLite keeps the per-SIM outcomes and the enqueue-to-sent histogram by
triggers in the writing transaction (`METRIC_COUNTS` in sqlite_engine.py); another engine
without them is asked the same question by a query.
"""

from __future__ import annotations

from dataclasses import dataclass

from modempool.spool.engine import Engine
from modempool.spool.schema import SEND_LATENCY_BOUNDS, latency_bucket

FINISHED = ("sent", "delivered", "failed", "ambiguous")


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
        kept = self.engine.sim_outcomes()
        if kept is not None:
            return kept
        return {(row[0], row[1]): row[2] for row in self.engine.rows(
            "SELECT sim, state, count(*) FROM messages WHERE sim IS NOT NULL AND state IN "
            f"({', '.join(repr(s) for s in FINISHED)}) GROUP BY sim, state")}

    def send_latency(self) -> SendLatency:
        """The enqueue-to-sent histogram of every message sent."""
        counts = [0] * (len(SEND_LATENCY_BOUNDS) + 1)
        total = 0.0
        kept = self.engine.send_latency()
        if kept is None:
            seconds = self.engine.seconds_between("sent_at", "created_at")
            kept = [tuple(row) for row in self.engine.rows(
                f"SELECT {latency_bucket('d')} AS b, count(*), sum(d) "
                f"FROM (SELECT {seconds} AS d FROM messages WHERE sent_at IS NOT NULL) AS sent "
                "WHERE d IS NOT NULL GROUP BY b")]
        for bucket, n, seconds in kept:
            counts[bucket] += n
            total += seconds
        return SendLatency(tuple(float(b) for b in SEND_LATENCY_BOUNDS), tuple(counts), total)
