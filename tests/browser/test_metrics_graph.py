"""The operators' metrics on Prometheus's own graph page, in Chromium: after a few proposals, the page
plots proposals by status and the steps' p95 latency from what Prometheus scraped. The picture of
docs/metrics.md (`DESK_SCREENSHOTS=docs` takes it again); Grafana is not installable here."""

from __future__ import annotations

from urllib.parse import urlencode

from playwright.sync_api import expect

from hms_management.domain.outcome import COMPLETED, DENIED
from tests.live_stack import wait_for_status

GRAPHS = {
    "sum by (status) (hms_proposals)": "Proposals by status",
    "histogram_quantile(0.95, sum by (le, step) (rate(hms_step_duration_seconds_bucket[1m])))": "p95 per step",
}


def graph_page(url: str, *, minutes: int = 1) -> str:
    params = {}
    for n, expression in enumerate(GRAPHS):
        params |= {f"g{n}.expr": expression, f"g{n}.tab": "0", f"g{n}.range_input": f"{minutes}m",
                   f"g{n}.stacked": "0"}
    return f"{url}/classic/graph?{urlencode(params)}"


def test_prometheus_plots_the_proposals_and_step_latency(prometheus, management, new_context, shots, tag):
    for n in range(6):
        management.submit({"id": f"graph-{tag}-{n}", "rule": {"queue": "foia"}, "day": "Wed"})
    management.submit({"id": f"graph-{tag}-weekend", "rule": {"queue": "foia"}, "day": "Sun"})
    for n in range(6):
        wait_for_status(management, f"graph-{tag}-{n}", COMPLETED)
    wait_for_status(management, f"graph-{tag}-weekend", DENIED)
    prometheus.wait_for(f'hms_proposals_ended_total{{outcome="{DENIED}"}}')
    prometheus.next_scrape("hms-management")

    page = new_context().new_page()
    page.set_viewport_size({"width": 1400, "height": 1750})  # both graphs in one picture
    page.goto(graph_page(prometheus.url))

    # Each graph is drawn (an SVG per panel) with a legend naming what it plots.
    expect(page.locator(".legend")).to_have_count(len(GRAPHS))
    expect(page.locator(".legend").first).to_contain_text(COMPLETED)
    expect(page.locator(".legend").nth(1)).to_contain_text("apply_policy")
    page.locator("body").click(position={"x": 5, "y": 5})  # the query box's focus no longer scrolls the page
    page.evaluate("window.scrollTo(0, 0)")
    shots(page, "metrics-prometheus.png")
