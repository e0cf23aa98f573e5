"""Webhook delivery in Prometheus' terms: follower lag, backlog, attempts, failures, disabled."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from infrastructure.container import Services


class WebhookCollector(Collector):
    """Reads :meth:`WebhookService.status` at each scrape."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self):  # type: ignore[no-untyped-def]
        status = self._services.webhooks.status()
        lag = GaugeMetricFamily(
            "session_ledger_webhook_lag_events", "Events not yet turned into webhook messages"
        )
        lag.add_metric([], float(status["lag"]))
        label = ["endpoint"]
        pending = GaugeMetricFamily(
            "session_ledger_webhook_pending_deliveries", "Deliveries not yet made", labels=label
        )
        oldest = GaugeMetricFamily(
            "session_ledger_webhook_delivery_lag_seconds",
            "Age of the oldest pending delivery",
            labels=label,
        )
        failed = GaugeMetricFamily(
            "session_ledger_webhook_failed_deliveries",
            "Deliveries given up after the last retry",
            labels=label,
        )
        enabled = GaugeMetricFamily(
            "session_ledger_webhook_endpoint_enabled", "1 if the endpoint is enabled", labels=label
        )
        attempts = CounterMetricFamily(
            "session_ledger_webhook_attempts", "Delivery attempts", labels=["endpoint", "outcome"]
        )
        for e in status["endpoints"]:
            key = [e["id"]]
            pending.add_metric(key, float(e["pending"]))
            oldest.add_metric(key, float(e["oldest_pending_seconds"]))
            failed.add_metric(key, float(e["failed"]))
            enabled.add_metric(key, 1.0 if e["enabled"] else 0.0)
            attempts.add_metric([e["id"], "delivered"], float(e["delivered_total"]))
            attempts.add_metric([e["id"], "failed"], float(e["failures_total"]))
        disabled = GaugeMetricFamily(
            "session_ledger_webhook_disabled_endpoints", "Endpoints disabled (automatically or not)"
        )
        disabled.add_metric([], float(status["disabled_endpoints"]))
        yield from (lag, pending, oldest, failed, enabled, attempts, disabled)
