"""Prometheus metrics, read from the spool at scrape time (so they are right whichever process
sends: the daemon, `modempool serve` beside it, or both), plus this process's HTTP requests.
The spool answers through named questions (`spool.metrics`, `Webhooks.counts`), kept cheap
as it grows."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

class SpoolCollector:
    def __init__(self, api: Any) -> None:
        self.api = api

    def collect(self):  # noqa: C901 (a flat list of metric families)
        spool, config = self.api.spool, self.api.config
        queue = GaugeMetricFamily("modempool_queue_messages", "Messages in the spool by state",
                                  labels=["state"])
        for state, n in spool.counts().items():
            queue.add_metric([state], n)
        yield queue

        # A counter only rises (rate() and increase() read a fall as a restart): outcomes
        # reached; what each SIM's messages are now (sent -> delivered moves one) is a gauge.
        reached = CounterMetricFamily("modempool_sim_messages",
                                      "Messages that reached each outcome per SIM",
                                      labels=["sim", "state"])
        for (sim, state), n in sorted(spool.metrics.sim_outcomes_reached().items()):
            reached.add_metric([sim, state], n)
        now = GaugeMetricFamily("modempool_sim_messages_in_state",
                                "Finished messages per SIM by the state they are in now",
                                labels=["sim", "state"])
        for (sim, state), n in sorted(spool.metrics.sim_outcomes().items()):
            now.add_metric([sim, state], n)
        yield from (reached, now)

        sims = {row["name"]: row for row in spool.sims()}
        names = [m.name for m in config.modems] + sorted(set(sims) - {m.name for m in config.modems})
        parts = CounterMetricFamily("modempool_sim_sent_parts", "SMS parts sent per SIM", labels=["sim"])
        signal = GaugeMetricFamily("modempool_sim_signal_dbm", "Signal strength per SIM (dBm)",
                                   labels=["sim"])
        up = GaugeMetricFamily("modempool_sim_up", "1 if the SIM is up and sending", labels=["sim"])
        errors = CounterMetricFamily("modempool_sim_errors", "Send errors per SIM", labels=["sim"])
        quota = GaugeMetricFamily("modempool_sim_quota_used_ratio",
                                  "Share of the SIM's quota used in the window", labels=["sim", "window"])
        sent = spool.sent_counts_of([m.name for m in config.modems])
        for name in names:
            row = sims.get(name) or {}
            parts.add_metric([name], row.get("sent_total") or 0)
            errors.add_metric([name], row.get("errors") or 0)
            up.add_metric([name], 1 if row.get("state") == "up" else 0)
            if row.get("signal") is not None:
                signal.add_metric([name], row["signal"])
            modem = config.modem(name)
            if modem is not None:
                minute, today, month = sent[name]
                for window, used, limit in (("minute", minute, modem.per_minute),
                                            ("day", today, modem.per_day),
                                            ("month", month, modem.per_month)):
                    if limit:
                        quota.add_metric([name, window], used / limit)
        yield from (parts, signal, up, errors, quota)

        latency = spool.metrics.send_latency()
        buckets = list(zip([str(b) for b in latency.bounds] + ["+Inf"], latency.cumulative))
        yield HistogramMetricFamily("modempool_send_latency_seconds", "Time from enqueue to sent",
                                    buckets=buckets, sum_value=latency.seconds)

        outbox = self.api.webhooks.counts()
        deliveries = CounterMetricFamily("modempool_webhook_deliveries",
                                         "Webhook events delivered or given up on",
                                         labels=["state"])
        for state in ("delivered", "dead"):   # final: a row never leaves them
            deliveries.add_metric([state], outbox[state])
        yield deliveries
        yield GaugeMetricFamily("modempool_webhook_pending", "Webhook events waiting for delivery",
                                value=outbox["pending"])
        yield CounterMetricFamily("modempool_webhook_failed_attempts",
                                  "Webhook delivery attempts that failed",
                                  value=self.api.webhooks.failed_attempts())


def registry_for(api: Any) -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SpoolCollector(api))
    requests = Counter("modempool_http_requests", "HTTP requests by route and status",
                       ["route", "method", "status"], registry=registry)
    return registry, requests
