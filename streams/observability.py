"""Prometheus metrics of one worker: records, dead letters, deliveries, lag."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.analytics.metrics import WINDOWS_S, split_dimension, summarize

if TYPE_CHECKING:
    from streams.app import Pipeline


class PipelineMetrics:
    """Counters the stages increment, and gauges read from the app when scraped."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.registry = CollectorRegistry()
        self.prefix = pipeline.settings.topic_prefix
        self.records_in = Counter(
            "tocsin_records_in_total",
            "Records consumed by a stage, by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "tocsin_dead_lettered_total",
            "Records sent to the dead-letter topic, by stage.",
            ["stage"],
            registry=self.registry,
        )
        self.incident_events = Counter(
            "tocsin_incident_events_total",
            "Incident timeline events, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.delivery_attempts = Counter(
            "tocsin_delivery_attempts_total",
            "Notification delivery attempts, by receiver and outcome.",
            ["receiver", "status"],
            registry=self.registry,
        )
        self.deliveries_abandoned = Counter(
            "tocsin_deliveries_abandoned_total",
            "Notifications given up after their retries, by receiver.",
            ["receiver"],
            registry=self.registry,
        )
        self.registry.register(_ScrapeTimeCollector(pipeline))

    def topic(self, name: str) -> str:
        """Return a topic's name without the deployment's prefix."""
        return name.removeprefix(self.prefix)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ScrapeTimeCollector(Collector):
    """Consumer lag and the response metrics of each service's newest window."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterable[Any]:
        yield self._lag()
        yield from self._response_times()

    def _lag(self) -> GaugeMetricFamily:
        lag = GaugeMetricFamily(
            "tocsin_consumer_lag_records",
            "Records not yet read from each assigned partition.",
            labels=["topic", "partition"],
        )
        monitor = self.pipeline.app.monitor
        ends = getattr(monitor, "tp_end_offsets", None) or {}
        read = getattr(monitor, "tp_read_offsets", None) or {}
        prefix = self.pipeline.settings.topic_prefix
        for tp, end in ends.items():
            behind = max(0, end - read.get(tp, 0) - 1) if tp in read else end
            lag.add_metric([tp.topic.removeprefix(prefix), str(tp.partition)], behind)
        return lag

    def _response_times(self) -> Iterable[GaugeMetricFamily]:
        mtta = GaugeMetricFamily(
            "tocsin_mtta_seconds",
            "Mean time to acknowledge in each service's newest window.",
            labels=["service", "window"],
        )
        mttr = GaugeMetricFamily(
            "tocsin_mttr_seconds",
            "Mean time to resolve in each service's newest window.",
            labels=["service", "window"],
        )
        p95 = GaugeMetricFamily(
            "tocsin_response_p95_seconds",
            "95th percentile of time to acknowledge (tta) or resolve (ttr) in "
            "each service's newest window, from its DDSketch.",
            labels=["service", "window", "measure"],
        )
        opened = GaugeMetricFamily(
            "tocsin_incidents_opened",
            "Incidents opened in each service's newest window.",
            labels=["service", "window"],
        )
        sla = GaugeMetricFamily(
            "tocsin_sla_compliance_ratio",
            "Share of incidents acknowledged (tta) or resolved (ttr) within "
            "target in each service's newest window.",
            labels=["service", "window", "measure"],
        )
        for window in WINDOWS_S:
            table = self.pipeline.tables.get(f"response-{window}")
            if table is None:
                continue
            newest: dict[str, tuple[float, Any]] = {}
            for stored_key, totals in table.table.items():
                dimension, (start, _) = stored_key
                kind, service = split_dimension(dimension)
                if kind != "service" or service is None:
                    continue
                if service not in newest or start > newest[service][0]:
                    newest[service] = (start, totals)
            for service, (start, totals) in sorted(newest.items()):
                summary = summarize(totals, WINDOWS_S[window], start)
                if summary["mtta_s"] is not None:
                    mtta.add_metric([service, window], summary["mtta_s"])
                if summary["mttr_s"] is not None:
                    mttr.add_metric([service, window], summary["mttr_s"])
                opened.add_metric([service, window], summary["opened"])
                for measure in ("tta", "ttr"):
                    labels = [service, window, measure]
                    if summary[measure]["p95_s"] is not None:
                        p95.add_metric(labels, summary[measure]["p95_s"])
                    if summary["sla"][measure] is not None:
                        sla.add_metric(labels, summary["sla"][measure])
        yield from (mtta, mttr, p95, opened, sla)
