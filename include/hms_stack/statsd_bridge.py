"""Airflow's own metrics for Prometheus on one machine: a StatsD receiver that serves what it received
in the Prometheus text format — what Prometheus's statsd_exporter does in docker-compose, which Debian
does not package. Local stacks only (`make run METRICS_PORT=9102`, the tests); docs/metrics.md.

    python -m hms_stack.statsd_bridge --port 9102     # StatsD on UDP 127.0.0.1:9102, /metrics on TCP 9102

Airflow sends StatsD lines (`[metrics] statsd_on`), with its tags in InfluxDB's style
(`statsd_influxdb_enabled`): `airflow.pool.open_slots,pool_name=hms_policy:4|g`. They become the
metrics statsd_exporter would make of them without a mapping: the name with every character but
letters, digits and `_` turned into `_` (`airflow_pool_open_slots{pool_name="hms_policy"}`); counters
add up (named as statsd_exporter names them, without `_total`), gauges keep the last value (or move by a
signed value), timers (milliseconds) become histograms in seconds.
"""

from __future__ import annotations

import argparse
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

# statsd_exporter's default histogram buckets for timers (Prometheus's own defaults), in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COUNTER, GAUGE, TIMER = "c", "g", "ms"
Labels = tuple[tuple[str, str], ...]


def metric_name(statsd_name: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]", "_", statsd_name)
    return f"_{name}" if name[:1].isdigit() else name


@dataclass
class Series:
    kind: str
    value: float = 0.0  # a counter's sum or a gauge's value
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS))
    count: float = 0.0
    total: float = 0.0  # of a timer's observations, in seconds


class Received:
    """Every series received so far, by metric name and labels."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.series: dict[str, dict[Labels, Series]] = {}
        self.kinds: dict[str, str] = {}
        self.lines = 0
        self.refused = 0

    def take(self, datagram: bytes) -> None:
        for line in datagram.decode("utf-8", "replace").splitlines():
            if line.strip():
                self.take_line(line.strip())

    def take_line(self, line: str) -> None:
        """One StatsD line: `name[,tag=value…]:value|type[|@rate][|#tag:value,…]`."""
        try:
            key, _, rest = line.partition(":")
            value_text, kind, *extra = rest.split("|")
            name, *tags = key.split(",")
            labels = dict(tag.split("=", 1) for tag in tags if "=" in tag)
            rate = 1.0
            for part in extra:
                if part.startswith("@"):
                    rate = float(part[1:]) or 1.0
                elif part.startswith("#"):
                    labels |= dict(tag.split(":", 1) for tag in part[1:].split(",") if ":" in tag)
            value = float(value_text)
        except ValueError:
            self.refused += 1
            return
        kind = {"h": TIMER, "d": TIMER}.get(kind, kind)
        if kind not in (COUNTER, GAUGE, TIMER) or not name:
            self.refused += 1
            return
        name = metric_name(name)
        ordered = tuple(sorted((metric_name(k), v) for k, v in labels.items()))
        with self.lock:
            if self.kinds.setdefault(name, kind) != kind:  # one name, one type (as statsd_exporter)
                self.refused += 1
                return
            series = self.series.setdefault(name, {}).setdefault(ordered, Series(kind))
            self.lines += 1
            if kind == COUNTER:
                series.value += value / rate
            elif kind == GAUGE:
                series.value = series.value + value if value_text[:1] in "+-" else value
            else:
                seconds = value / 1000
                series.count += 1 / rate
                series.total += seconds / rate
                for i, bound in enumerate(BUCKETS):
                    if seconds <= bound:
                        series.buckets[i] += 1 / rate

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            snapshot = {name: {labels: Series(s.kind, s.value, list(s.buckets), s.count, s.total)
                               for labels, s in by_labels.items()} for name, by_labels in self.series.items()}
            lines, refused = self.lines, self.refused
        for name, by_labels in sorted(snapshot.items()):
            yield from _family(name, by_labels)
        yield GaugeMetricFamily("statsd_bridge_lines", "StatsD lines taken since the bridge started", value=lines)
        yield GaugeMetricFamily("statsd_bridge_refused", "StatsD lines refused (unreadable, or of another type)",
                                value=refused)


def _family(name: str, by_labels: dict[Labels, Series]) -> Iterator[Metric]:
    kind = next(iter(by_labels.values())).kind
    names = sorted({key for labels in by_labels for key, _ in labels})
    if kind == TIMER:
        family = HistogramMetricFamily(name, f"StatsD timer {name}, in seconds", labels=names)
        for labels, series in by_labels.items():
            # Each observation was added to every bucket it fits: the counts are cumulative already.
            buckets = [(repr(bound), number) for bound, number in zip(BUCKETS, series.buckets, strict=True)]
            buckets.append(("+Inf", series.count))
            family.add_metric(_values(labels, names), buckets, series.total)
        yield family
        return
    # Counters keep statsd_exporter's names (no `_total`), which this client writes only as untyped.
    family = Metric(name, f"StatsD {'counter' if kind == COUNTER else 'gauge'} {name}",
                    "unknown" if kind == COUNTER else "gauge")
    for labels, series in by_labels.items():
        family.add_sample(name, dict(zip(names, _values(labels, names), strict=True)), series.value)
    yield family


def _values(labels: Labels, names: list[str]) -> list[str]:
    found = dict(labels)
    return [found.get(key, "") for key in names]


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Receive StatsD on UDP host:port and serve /metrics on TCP host:port until killed."""
    received = Received()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(received)
    start_http_server(port, addr=host, registry=registry)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, port))
    print(f"statsd bridge: StatsD on udp://{host}:{port}, Prometheus metrics on http://{host}:{port}/metrics",
          flush=True)
    while True:
        try:
            received.take(udp.recv(65535))
        except OSError:
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hms_stack.statsd_bridge", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="UDP port for StatsD and TCP port for /metrics")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    serve(args.port, args.host)


if __name__ == "__main__":
    main()
