"""A step's calls to its service, one per target, sent in parallel within the service's budgets.

A proposal may name several policy scopes and several officer groups (design.md §11): its policy
step sends one call per scope, its notification step one per group, each under an Idempotency-Key
of its own, at most `max_parallel_calls` at once (the step holds that many of its service's pool
slots, so the pool still bounds the calls in flight), each at its slot of the service's rate budget.

What each call came to is kept per target: applied (its answer), failed (its error), or waiting for a
slot further off than a task should sleep (its reserved slot). The step then records them and
decides: all applied → done; a slot to wait for → a reschedule; a failure → a retry that re-sends
only what did not apply.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from queue import SimpleQueue
from typing import Any

from hms_management.domain.services import Service, ServiceError, TransientServiceError
from hms_management.orchestration.budget import RateBudget, WaitLonger
from hms_management.orchestration.hook import HmsHook

APPLIED, FAILED, WAITING = "applied", "failed", "waiting"


@dataclass(frozen=True)
class Call:
    """One target's call: which target (a scope, a group), its Idempotency-Key and its body."""

    target: str
    idempotency_key: str
    body: dict[str, Any]

    def shown(self) -> dict[str, Any]:
        """As the UI's Rendered tab shows it."""
        return {"target": self.target, "idempotency_key": self.idempotency_key, "body": self.body}


@dataclass
class Sent:
    """What each call came to, by target."""

    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, ServiceError] = field(default_factory=dict)
    waits: dict[str, WaitLonger] = field(default_factory=dict)

    @property
    def next_slot(self) -> WaitLonger | None:
        return min(self.waits.values(), key=lambda wait: wait.slot) if self.waits else None

    def error(self, step: str) -> ServiceError | None:
        """The step's error when a target failed: transient only if every failure may pass; it names
        each target that failed."""
        if not self.errors:
            return None
        kind = TransientServiceError if all(isinstance(e, TransientServiceError) for e in self.errors.values()) \
            else type(next(e for e in self.errors.values() if not isinstance(e, TransientServiceError)))
        said = "; ".join(f"{target}: {err}" for target, err in sorted(self.errors.items()))
        first = next(iter(self.errors.values()))
        return kind(f"{step} failed for {len(self.errors)} of its targets — {said}"[:1000], status=first.status)


def send_all(service: Service, calls: list[Call], *, parallel: int,
             reserved: dict[str, datetime]) -> Sent:
    """Send each call at its slot of the service's budget, at most `parallel` at once. A call whose
    slot (`reserved` from an earlier try, or reserved now) is too far off is not sent: it waits."""
    sent = Sent()
    kept = {call.target: RateBudget(service.name, reserved=reserved[call.target], may_wait_longer=True)
            for call in calls if call.target in reserved}
    # Several calls without a slot reserve theirs together; one call reserves its own as it goes.
    fresh = [call.target for call in calls if call.target not in reserved]
    budgets = kept | (RateBudget.reserve_for(service.name, fresh, may_wait_longer=True) if len(fresh) > 1
                      else {target: RateBudget(service.name, may_wait_longer=True) for target in fresh})
    width = max(1, min(parallel, len(calls)))
    hooks: SimpleQueue[HmsHook] = SimpleQueue()  # one session per thread: kept-alive sockets, one look-up
    for _ in range(width):
        hooks.put(HmsHook(service))

    def send(call: Call) -> None:
        hook = hooks.get()
        try:
            sent.answers[call.target] = hook.post(call.body, idempotency_key=call.idempotency_key,
                                                  budget=budgets[call.target])
        except WaitLonger as wait:
            sent.waits[call.target] = wait
        except ServiceError as err:
            sent.errors[call.target] = err
        finally:
            hooks.put(hook)

    if width == 1:  # the common case (one target), without a thread
        for call in calls:
            send(call)
    else:
        with ThreadPoolExecutor(width, thread_name_prefix=f"{service.name}-call") as pool:
            list(pool.map(send, calls))
    return sent
