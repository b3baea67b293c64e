"""The StatsD bridge of a local stack (hms_stack.statsd_bridge) as Prometheus reads it: Airflow's StatsD
lines, tags in InfluxDB's style, become the metrics statsd_exporter would make of them — over a real
UDP socket and HTTP, as a stack runs it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hms_stack.stack import free_port
from hms_stack.statsd_bridge import Received

STARTS_NO_STACK = True


def samples(received: Received) -> dict:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(received)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(generate_latest(registry).decode()) for s in family.samples}


def test_counters_add_up_gauges_keep_the_last_value_and_timers_are_histograms_in_seconds():
    received = Received()
    received.take(b"airflow.scheduler_heartbeat:1|c\nairflow.scheduler_heartbeat:1|c\n"
                  b"airflow.pool.open_slots,pool_name=hms_policy:4|g\nairflow.pool.open_slots,pool_name=hms_policy:3|g\n"
                  b"airflow.executor.open_slots:10|g\nairflow.executor.open_slots:-2|g\n"
                  b"airflow.ti.finish,dag_id=d,state=failed:2|c|@0.5\n"
                  b"airflow.dagrun.duration.success,dag_id=d:1500|ms\n")

    found = samples(received)

    assert found[("airflow_scheduler_heartbeat", ())] == 2
    assert found[("airflow_pool_open_slots", (("pool_name", "hms_policy"),))] == 3
    assert found[("airflow_executor_open_slots", ())] == 8  # a signed value moves a gauge
    assert found[("airflow_ti_finish", (("dag_id", "d"), ("state", "failed")))] == 4  # sampled at 1 in 2
    duration = (("dag_id", "d"),)
    assert found[("airflow_dagrun_duration_success_count", duration)] == 1
    assert found[("airflow_dagrun_duration_success_sum", duration)] == 1.5
    assert found[("airflow_dagrun_duration_success_bucket", (*duration, ("le", "1.0")))] == 0
    assert found[("airflow_dagrun_duration_success_bucket", (*duration, ("le", "2.5")))] == 1


def test_unreadable_lines_and_a_name_of_another_type_are_refused_not_fatal():
    received = Received()
    received.take(b"no value here\nairflow.x:abc|c\nairflow.x:1|c\nairflow.x:1|g\nairflow.y:1|s\n")

    found = samples(received)

    assert found[("airflow_x", ())] == 1
    assert found[("statsd_bridge_refused", ())] == 4


def test_the_bridge_takes_statsd_over_udp_and_serves_it_over_http():
    port = free_port()
    bridge = subprocess.Popen([sys.executable, "-m", "hms_stack.statsd_bridge", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, text = time.monotonic() + 30, ""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            while "airflow_scheduler_heartbeat" not in text:
                assert time.monotonic() < deadline, text
                udp.sendto(b"airflow.scheduler_heartbeat:1|c", ("127.0.0.1", port))
                with contextlib.suppress(httpx.TransportError):
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                time.sleep(0.2)
    finally:
        bridge.terminate()
        bridge.wait(timeout=10)
