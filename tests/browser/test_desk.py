"""The analysts' desk as people use it in the Airflow UI: signed in on Airflow's login page, the
Proposals view in its iframe, statuses in their colours, reviews decided with the buttons (or not
offered), a run's Proposal tab, and the API docs, all served from this machine.
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from hms_management.client import ManagementClient
from hms_management.domain.proposal import DAG_ID, run_id_for
from tests.browser.conftest import desk, run_tab
from tests.live_stack import wait_for_status

# What people see for each status: its name, and its colour (Okabe–Ito, told apart with colour-blindness).
LOOKS = {
    "queued": ("queued", "rgb(86, 180, 233)"),
    "running": ("running", "rgb(0, 114, 178)"),
    "awaiting_governance": ("awaiting review", "rgb(230, 159, 0)"),
    "completed": ("completed", "rgb(0, 158, 115)"),
    "denied": ("denied", "rgb(204, 121, 167)"),
    "review_timeout": ("review timed out", "rgb(240, 228, 66)"),
    "failed": ("failed", "rgb(213, 94, 0)"),
    "revoked": ("revoked", "rgb(0, 0, 0)"),
}
IN_REVIEW = "high-impact proposal: waiting for a human reviewer"


def proposal(proposal_id: str, title: str, **fields) -> dict:
    return {"id": proposal_id, "title": title, "rule": {"queue": proposal_id.rsplit("-", 1)[0], "max_age_days": 20},
            "submitted_by": "hms-a2a", **fields}


def park(client: ManagementClient, *proposals: dict) -> None:
    """Submit high-impact proposals and wait until each is parked in review (its 20 s start then)."""
    for body in proposals:
        client.submit({**body, "impact": "high"})
    for body in proposals:
        wait_for_status(client, body["id"], "awaiting_governance")


def row(page: Page, proposal_id: str):
    return desk(page).locator(f"tr[data-proposal='{proposal_id}']")


def expect_status(scope, status: str, timeout: float = 60_000) -> None:
    name, colour = LOOKS[status]
    badge = scope.locator(".status").first
    expect(badge).to_have_text(name, timeout=timeout)
    expect(badge).to_have_css("background-color", colour)


def open_reviews(page: Page) -> None:
    desk(page).get_by_role("navigation", name="Views").get_by_role("link", name="Awaiting review").click()
    expect(desk(page).locator("table.proposals")).to_contain_text("Awaiting review, oldest first")


def test_an_analyst_sees_each_outcome_in_its_colour_with_its_reason(sign_in, management, hms, tag, shots):
    ids = {status: f"{name}-{tag}" for status, name in
           [("awaiting_governance", "zoning-r2-height"), ("failed", "parking-fees"),
            ("denied", "permit-weekend"), ("completed", "foia-backlog")]}
    management.submit(proposal(ids["completed"], "Optimise the FOIA backlog"))
    management.submit(proposal(ids["denied"], "Weekend permit batch", day="Sat", submitted_by="permits-office"))
    wait_for_status(management, ids["completed"], "completed")
    wait_for_status(management, ids["denied"], "denied")
    hms.put("/admin/faults", json={"route": "/svc/policy", "status": 422, "times": 1}).raise_for_status()
    management.submit(proposal(ids["failed"], "Parking fees by zone", priority="high"))
    wait_for_status(management, ids["failed"], "failed")
    page = sign_in("analyst")  # before the review starts: it lasts 20 s here
    park(management, proposal(ids["awaiting_governance"], "Raise the R2 height limit to 12 m",
                              submitted_by="planning-portal"))

    view = desk(page)
    view.get_by_label("Id or title contains").fill(tag)
    view.get_by_role("button", name="Filter").click()

    reasons = {"awaiting_governance": IN_REVIEW, "denied": "processing is not allowed on weekends (day: Sat)",
               "completed": "policy applied and officers notified"}
    for status, proposal_id in ids.items():
        expect_status(row(page, proposal_id), status)
        if status in reasons:
            expect(row(page, proposal_id).locator(".reason")).to_have_text(reasons[status])
    failed = row(page, ids["failed"])
    expect(failed.locator(".reason")).to_contain_text("422")
    expect(failed).to_contain_text("apply_policy")
    expect(view.locator("tbody tr")).to_have_count(4)

    open_reviews(page)
    expect(row(page, ids["awaiting_governance"]).locator(".reason")).to_have_text(IN_REVIEW)
    expect(row(page, ids["awaiting_governance"]).get_by_role("button")).to_have_count(0)  # analysts read

    # The id opens the run's page in the whole window, and its Proposal tab tells the same story.
    view.get_by_role("navigation", name="Views").get_by_role("link", name="All proposals").click()
    row(page, ids["failed"]).get_by_role("link", name=ids["failed"]).click()
    page.wait_for_url(f"**/dags/{DAG_ID}/runs/{run_id_for(ids['failed'])}")
    page.get_by_role("link", name="Proposal", exact=True).click()
    tab = run_tab(page)
    expect_status(tab.locator("main"), "failed")
    expect(tab.locator(".facts")).to_contain_text("apply_policy")
    expect(tab.get_by_role("table", name="Steps")).to_contain_text("record_audit")
    shots(page, "desk-run.png")


def test_a_reviewer_approves_in_the_view_and_watches_it_complete(stack, sign_in, management, reviewer_api, tag):
    approved, taken = f"housing-permits-{tag}", f"library-hours-{tag}"
    page = sign_in("reviewer", "/plugin/proposals/management/desk?tab=reviews")
    assert page.request.get(f"{stack.api_url}/management/me").json() == {  # the UI's cookie is the login
        "user": "reviewer", "may_submit": True, "may_review": True}
    park(management, proposal(approved, "Fast-track small housing permits"),
         proposal(taken, "Extend library opening hours"))
    desk(page).get_by_role("navigation", name="Views").get_by_role("link", name="Awaiting review").click()

    # Someone else decided `taken` meanwhile: the page still offers it, the server refuses and says why.
    assert reviewer_api.decide(taken, approved=True, reason="agreed at the board").status_code == 200
    stale = row(page, taken)
    stale.get_by_label("Reason").fill("too costly")
    stale.get_by_role("button", name="Deny").click()
    expect(stale.get_by_role("alert")).to_contain_text("Not decided (409)")
    expect(stale.get_by_role("alert")).to_contain_text(re.compile("already approved|not awaiting review"))

    decided = row(page, approved)
    decided.get_by_label("Reason").fill("matches the housing plan")
    decided.get_by_role("button", name="Approve").click()

    expect(decided).to_contain_text("Approved by you: “matches the housing plan”.")
    expect(decided.get_by_role("button")).to_have_count(0)
    expect_status(decided, "completed", timeout=120_000)  # the review watcher resumed it; the page follows
    final = management.status(approved)
    assert (final["status"], final["governance"]["reviewer"]) == ("completed", "reviewer")


def test_an_agent_is_offered_no_decision_and_the_api_refuses_it(stack, sign_in, management, tag):
    waiting = f"bus-lanes-{tag}"
    page = sign_in("agent")
    park(management, proposal(waiting, "Bus lanes on Main Street"))
    open_reviews(page)

    expect(row(page, waiting)).to_contain_text("Reviewers decide.")
    expect(row(page, waiting).get_by_role("button")).to_have_count(0)
    api = f"{stack.api_url}/management"
    assert page.request.get(f"{api}/me").json() == {"user": "agent", "may_submit": True, "may_review": False}
    refused = page.request.post(f"{api}/proposals/{waiting}/decision",
                                data={"approved": True, "reason": "I am an agent"})  # the UI's cookie
    assert refused.status == 403, refused.text()
    assert management.status(waiting)["status"] == "awaiting_governance"


def test_four_eyes_a_reviewer_is_offered_no_decision_on_their_own_proposal(
        stack, sign_in, management, reviewer_api, tag, shots):
    own, other = f"street-lights-{tag}", f"snow-clearing-{tag}"
    page = sign_in("reviewer")
    park(reviewer_api, proposal(own, "LED street lights, phase 2", submitted_by="reviewer"))
    park(management, proposal(other, "Snow clearing priorities"))
    open_reviews(page)

    expect(row(page, own)).to_contain_text("You submitted this proposal: another reviewer decides it")
    expect(row(page, own).get_by_role("button")).to_have_count(0)
    expect(row(page, other).get_by_role("button", name="Approve")).to_be_visible()
    refused = page.request.post(f"{stack.api_url}/management/proposals/{own}/decision",
                                data={"approved": True, "reason": "mine"})
    assert refused.status == 403 and "four-eyes" in refused.json()["detail"]

    # Within the reminder time (10 s before the 20 s deadline here) a review is marked due soon.
    reload_until(page, lambda: row(page, own).locator(".mark").filter(has_text="due soon").count() == 1)
    shots(page, "desk-reviews.png")


def test_a_status_count_filters_the_table_to_that_status(sign_in, analyst, shots):
    page = sign_in("analyst")
    expect(desk(page).locator("table.proposals")).to_contain_text("All proposals, newest first")
    shots(page, "desk-proposals.png")

    counts = desk(page).get_by_role("region", name="Proposals per status")
    counts.get_by_role("link").filter(has_text="denied").click()

    expect(desk(page).locator("table.proposals")).to_contain_text("Denied, newest first")
    badges = desk(page).locator("tbody .status")
    expect(badges.first).to_have_text("denied")
    assert set(badges.all_inner_texts()) == {"denied"}
    assert badges.count() == min(analyst.counts()["denied"], 50)


def test_a_run_that_is_not_a_proposal_says_so_on_its_proposal_tab(sign_in, agent):
    runs = agent.request("GET", "/api/v2/dags/review_watch/dagRuns", params={"limit": 1}).json()["dag_runs"]
    assert runs, "the review watcher runs continuously: it has a run"
    page = sign_in("analyst", f"/dags/review_watch/runs/{runs[0]['dag_run_id']}/plugin/proposal")

    expect(run_tab(page).locator("main")).to_have_text(
        "This run of review_watch is not a proposal: proposals are runs of proposal_orchestration.")


def test_a_visit_without_signing_in_gets_a_page_that_says_so(stack, new_context):
    page = new_context().new_page()

    response = page.goto(f"{stack.api_url}/management/desk")

    assert response.status == 401
    expect(page.get_by_role("heading", name="Sign in to Airflow first")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in to Airflow")).to_have_attribute("href", "/auth/login")


def test_the_api_docs_render_every_operation_from_this_machine(stack, new_context, requests_seen):
    page = new_context().new_page()

    page.goto(f"{stack.api_url}/management/docs")

    operations = page.locator(".opblock-summary")
    expect(operations.filter(has_text="/proposals/{proposal_id}/decision")).to_be_visible()
    expect(operations.filter(has_text="Who the caller is")).to_be_visible()
    documented = page.request.get(f"{stack.api_url}/management/openapi.json").json()["paths"]
    assert operations.count() == sum(len(methods) for methods in documented.values())
    page.wait_for_load_state("networkidle")
    assert any(url.endswith("/management/docs/assets/swagger-ui-bundle.js") for url in requests_seen)
    # new_context fails the test if any request left 127.0.0.1


def reload_until(page: Page, condition, timeout: float = 60) -> None:
    """Reload the page until `condition()` holds (server-rendered marks change only on a new page)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true after {timeout} s of reloading"
        page.reload()
        desk(page).locator("table.proposals").wait_for()


LIVE_RULE = {"strategy": "oldest-first", "max_days": 20, "limits": {"daily": 5, "weekly": 20}}
PROPOSED = {"strategy": "oldest-first", "max_days": 15, "limits": {"daily": 5}, "escalate": True}


def test_a_reviewer_sees_what_each_scope_would_change_live_beside_proposed(sign_in, management, tag, shots):
    live_scope, new_scope = f"foia/dhs/{tag}", f"foia/state/{tag}"
    put_live = management.submit({"id": f"dhs-rule-{tag}", "targets": [{"scope": live_scope, "rule": LIVE_RULE}]},
                                 wait=60)
    assert put_live["status"] == "completed"
    page = sign_in("reviewer", "/plugin/proposals/management/desk?tab=reviews")
    targets = [{"scope": live_scope, "rule": PROPOSED}, {"scope": new_scope, "rule": "oldest first"}]
    park(management, {"id": f"rebalance-{tag}", "title": "Rebalance the FOIA queues", "submitted_by": "hms-a2a",
                      "targets": targets, "notify": ["foia-officers", "privacy-office"]})
    page.reload()
    open_reviews(page)

    changes = row(page, f"rebalance-{tag}").locator(".changes")
    changed = changes.locator(f"table[data-scope='{live_scope}']")
    expect(changed.locator("caption")).to_contain_text("live version 1, 3 changes")
    marks = {"max_days": "changed", "limits.weekly": "removed", "escalate": "added", "strategy": "same",
             "limits.daily": "same"}
    for key, change in marks.items():
        line = changed.locator("tbody tr", has=page.locator(f"code:text-is('{key}')"))
        expect(line).to_have_attribute("data-change", change)
    expect(changed.locator("tr[data-change='changed'] td").nth(0)).to_have_text("20")
    expect(changed.locator("tr[data-change='changed'] td").nth(1)).to_have_text("15")
    new = changes.locator(f"table[data-scope='{new_scope}']")
    expect(new.locator("caption")).to_contain_text("no live rule yet")
    expect(new.locator("tbody tr")).to_have_attribute("data-change", "added")
    expect(row(page, f"rebalance-{tag}").locator(".targets")).to_have_text("2 scopes · 2 groups")
    shots(page, "desk-changes.png")


def test_a_reviewer_revokes_a_parked_proposal_with_a_reason_and_sees_it_end_revoked(sign_in, management, tag):
    proposal_id = f"bus-lanes-{tag}"
    page = sign_in("reviewer")
    park(management, proposal(proposal_id, "Bus lanes on Main Street"))
    page.reload()
    view = desk(page)
    view.get_by_label("Id or title contains").fill(tag)
    view.get_by_role("button", name="Filter").click()

    line = row(page, proposal_id)
    line.get_by_text("Revoke…").click()
    line.get_by_role("button", name="Revoke").click()  # without a reason the form is not sent
    expect_status(line, "awaiting_governance")
    line.get_by_label("Why revoke").fill("the street is being rebuilt")
    line.get_by_role("button", name="Revoke").click()

    expect(line.locator(".decided")).to_contain_text("Revoked by you: “the street is being rebuilt”.")
    expect_status(line, "revoked")
    expect(line.locator(".decided")).to_contain_text("Now revoked", timeout=60_000)


def test_an_active_suspension_is_shown_at_the_top_of_the_view(sign_in, hms, shots):
    hms.put("/gov/suspensions/policy", json={"reason": "incident 42: bad rules went live", "by": "ops"})
    try:
        page = sign_in("analyst")
        banner = desk(page).get_by_role("alert", name="Active suspensions")
        expect(banner).to_contain_text("Policy suspended")
        expect(banner).to_contain_text("by ops: incident 42: bad rules went live")
        shots(page, "desk-suspension.png")
    finally:
        hms.delete("/gov/suspensions/policy")
