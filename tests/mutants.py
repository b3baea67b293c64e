"""`make mutants`: break one promise of the README at a time and check that a test notices.

Each mutant is one small change to the code, the promise it breaks, and the tests that should catch
it. The runner copies the tracked files of this checkout into a scratch folder once, applies each
mutant there (never in the working tree), runs its tests with the scratch copy first on the import
path, and prints a table: killed (a test failed) or survived (every test passed). It exits 1 if any
mutant survives. `--live` also runs the end-to-end tests listed for each mutant (a stack per
mutant: much slower); `--only NAME` runs some.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    promise: str
    path: str
    before: str
    after: str
    tests: tuple[str, ...]  # fast: no stack
    live: tuple[str, ...] = field(default=())  # end-to-end, with --live


MUTANTS = (
    Mutant("no-idempotency-key", "a retry never applies a side effect twice (Idempotency-Key on every HMS step)",
           "include/hms_management/orchestration/hook.py",
           "return {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {}", "return {}",
           ("tests/unit/orchestration/test_operators.py",),
           ("tests/e2e/test_proposal_orchestration.py::test_a_retry_after_the_side_effect_was_applied_applies_nothing_twice",)),
    Mutant("backend-ignores-the-key", "the HMS backend applies a keyed call at most once",
           "include/hms_backend/routing.py",
           'if request.method == "POST" and idempotency_key is not None:', "if False:",
           ("tests/backend/test_idempotency.py",)),
    Mutant("gate-lets-a-denial-through", "a denied proposal changes no policy",
           "include/hms_management/orchestration/operators.py",
           "        if decision.status == APPROVED:\n", "        if decision.status in (APPROVED, DENIED):\n",
           ("tests/unit/orchestration/test_operators.py",
            "tests/workflow/test_proposal_orchestration.py::test_a_proposal_governance_denies_calls_no_service_and_its_denial_is_audited")),
    Mutant("unknown-governance-status-approves", "governance fails closed: only `approved` approves",
           "include/hms_management/domain/governance.py",
           "    if answer.get(\"status\") != expected:\n", "    if answer.get(\"status\") not in (expected, None):\n",
           ("tests/unit/domain/test_governance.py", "tests/unit/orchestration/test_operators.py")),
    Mutant("failure-flag-does-nothing", "a failed step makes the run red",
           "include/hms_management/orchestration/progress.py",
           "    outcome = outcome_of(Progress(context).record())\n    if outcome.outcome == FAILED:",
           "    return\n    outcome = outcome_of(Progress(context).record())\n    if outcome.outcome == FAILED:",
           ("tests/unit/orchestration/test_progress.py",
            "tests/workflow/test_proposal_orchestration.py::test_a_refused_step_fails_at_once_the_run_goes_red_and_the_audit_names_the_step")),
    Mutant("policy-step-outside-its-pool", "each HMS step runs in its service's pool (the concurrency budget)",
           "include/hms_management/orchestration/operators.py",
           "        super().__init__(pool=service.pool, **{**STEP_SETTINGS, **kwargs})",
           "        super().__init__(**{**STEP_SETTINGS, **kwargs})",
           ("tests/dags/test_dag_integrity.py",),
           ("tests/e2e/test_proposal_orchestration.py::test_each_step_ran_in_its_services_pool",)),
    Mutant("sweep-marks-taken-before-the-run-exists", "a queued proposal is never lost between the backlog and its run",
           "include/hms_management/sweep/runner.py",
           "            answer, detail = runs.start(proposal)\n",
           "            backlog.mark_taken(proposal.id, proposal.run_id)\n"
           "            answer, detail = runs.start(proposal)\n",
           ("tests/unit/sweep/test_backlog_sweep.py",)),
    Mutant("a-4xx-is-retried", "a refusal (4xx) is never retried", "include/hms_management/domain/services.py",
           "    return status >= 500 or status == 429", "    return status >= 400",
           ("tests/unit/domain/test_services.py",)),
    Mutant("audit-only-on-success", "an audit record for every outcome",
           "include/hms_management/orchestration/operators.py",
           "super().__init__(service=AUDIT, trigger_rule=TriggerRule.ALL_DONE, **kwargs)",
           "super().__init__(service=AUDIT, **kwargs)",
           ("tests/dags/test_dag_integrity.py",)),
    Mutant("admission-check-off", "a bad proposal is refused before a run exists",
           "include/hms_management/api/admission.py",
           "        errors = admission_errors(body)\n", "        errors = []\n",
           ("tests/unit/api/test_admission.py",)),
    Mutant("run-id-not-the-proposals", "one run per proposal id", "include/hms_management/api/admission.py",
           '    admitted = {**body, "dag_run_id": run_id_for(body["conf"]["id"])}',
           '    admitted = {**body, "dag_run_id": body.get("dag_run_id") or None}',
           ("tests/unit/api/test_admission.py",)),
    Mutant("status-from-the-run-note", "a proposal's status comes from what its workflow recorded, not its note",
           "include/hms_management/domain/outcome.py",
           "    if run_state in (QUEUED, RUNNING):\n        return Standing(run_state)\n",
           "    if run_state in (QUEUED, RUNNING):\n        return Standing(run_state)\n"
           "    if run_state == \"success\":\n        return Standing(COMPLETED)\n",
           ("tests/unit/domain/test_outcome.py",),
           ("tests/e2e/test_management_api.py::test_an_agent_rewriting_the_run_note_changes_no_status_list_or_filter",)),
    Mutant("credentials-only-at-the-top", "credential-like keys are refused at any depth",
           "include/hms_management/domain/proposal.py",
           "        stack.extend(reversed(children))", "        stack.extend([] if path else reversed(children))",
           ("tests/unit/domain/test_proposal.py",)),
    Mutant("review-deadline-from-the-try", "a review's deadline is fixed when it enters review",
           "include/hms_management/domain/governance.py",
           "    deadline = review_deadline(decision, timeout)\n", "    deadline = now + timeout\n",
           ("tests/unit/domain/test_governance.py",),
           ("tests/e2e/test_reviews.py::test_the_review_deadline_is_the_decisions_and_survives_a_cleared_gate",)),
    Mutant("step-skips-the-governance-check", "governance is asked before every step's call (design.md §9)",
           "include/hms_management/orchestration/operators.py",
           "        if self.guarded and settings().governance_checks:\n            self.ask_governance(progress)\n",
           "",
           ("tests/unit/orchestration/test_governance_checks.py",),
           ("tests/e2e/test_governance_before_every_step.py::"
            "test_a_proposal_revoked_between_its_policy_and_its_notification_tells_nobody",)),
    Mutant("any-existing-run-is-the-same-proposal",
           "a proposal queued under an id another proposal already runs is rejected, never silently taken",
           "include/hms_management/sweep/adapters.py",
           "        if run is not None and same_proposal(run.conf, proposal):\n",
           "        if run is not None:\n",
           ("tests/unit/sweep/test_adapters.py",),
           ("tests/e2e/test_backlog_sweep.py",)),
    Mutant("every-audit-record-counts-as-a-redrive",
           "a failed proposal is re-driven up to its limit: only its re-drive records count against it",
           "include/hms_management/sweep/adapters.py",
           "        return [item for item in items if item.get(\"action\") == REDRIVEN_ACTION]\n",
           "        return items\n",
           ("tests/unit/sweep/test_adapters.py",)),
    Mutant("backlog-entry-settled-elsewhere-reported-as-marked",
           "a backlog entry taken or rejected meanwhile is reported as it is, never as this sweep's mark",
           "include/hms_management/sweep/adapters.py",
           "        return \"gone\" if answer.status == 404 else answer.body[\"status\"]\n",
           "        return \"gone\" if answer.status == 404 else status\n",
           ("tests/unit/sweep/test_adapters.py",)),
    Mutant("backlog-id-of-dots-collapsed", "a backlog entry is marked at its own address, whatever its id",
           "include/hms_management/sweep/adapters.py",
           "    return quote(value, safe=\"\").replace(\".\", \"%2E\")\n", "    return quote(value, safe=\"\")\n",
           ("tests/unit/sweep/test_adapters.py",)),
    Mutant("redrive-runs-only-the-failed-step", "a re-drive runs the failed step and every step after it again",
           "include/hms_management/orchestration/airflow_api.py",
           "include_downstream=True,", "include_downstream=False,",
           ("tests/unit/sweep/test_adapters.py",)),
    Mutant("backend-side-effect-and-answer-apart", "a crash of the backend never lets a retry apply twice",
           "include/hms_backend/storage.py",
           "            if answer.keepable:\n                db.execute(\n",
           "            if answer.keepable:\n                db.execute(\"COMMIT\")\n"
           "                db.execute(\"BEGIN IMMEDIATE\")\n                db.execute(\n",
           ("tests/backend/test_crash_safety.py",)),
)


def scratch_copy() -> Path:
    """The tracked files of this checkout (uncommitted edits included) in a scratch folder."""
    folder = Path(tempfile.mkdtemp(prefix="hms-mutants-"))
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    return folder


def run(mutant: Mutant, folder: Path, *, live: bool) -> tuple[str, float, str]:
    target = folder / mutant.path
    original = target.read_text()
    if original.count(mutant.before) != 1:
        return "STALE", 0.0, f"the code to change was not found once in {mutant.path}: update the catalogue"
    target.write_text(original.replace(mutant.before, mutant.after))
    env = {**os.environ, "PYTHONPATH": f"{folder / 'include'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    try:
        for tests in (mutant.tests, mutant.live if live else ()):
            if not tests:
                continue
            result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                                    cwd=folder, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                failed = [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
                return "killed", time.monotonic() - started, (failed or ["(see pytest)"])[0][:110]
        return "SURVIVED", time.monotonic() - started, "every test passed"
    finally:
        target.write_text(original)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", action="store_true", help="also run each mutant's end-to-end tests")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these mutants")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    folder = scratch_copy()
    print(f"{len(chosen)} mutants, each in {folder} (the working tree is never changed)\n", flush=True)
    rows = []
    try:
        for mutant in chosen:
            verdict, seconds, detail = run(mutant, folder, live=args.live)
            rows.append((mutant, verdict, seconds, detail))
            print(f"{verdict:9} {seconds:6.1f} s  {mutant.name}: {detail}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\n| mutant | promise it breaks | result | caught by |\n| --- | --- | --- | --- |")
    for mutant, verdict, _, detail in rows:
        print(f"| `{mutant.name}` | {mutant.promise} | {verdict} | {detail} |")
    survivors = [m.name for m, verdict, _, _ in rows if verdict != "killed"]
    print(f"\n{len(rows) - len(survivors)} of {len(rows)} killed" + (f"; not killed: {', '.join(survivors)}"
                                                                     if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
