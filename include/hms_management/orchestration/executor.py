"""LocalExecutor whose task processes start warm.

Every task runs in a process forked from a LocalExecutor worker, which is forked from the
scheduler, and the first thing a task process does is parse its DAG file. Cold, that parse (the
HTTP provider, requests, aiohttp, Airflow's lazily imported decorators) cost about 0.5 s of a
proposal step that otherwise takes 0.1 s. Parsing the DAG folder once in the scheduler, before the
workers are forked, leaves all of it imported in every task process for free (copy-on-write), the
way Airflow's DAG processor pre-imports modules before it forks a parser
(`[dag_processor] parsing_pre_import_modules`).

It also starts Airflow's secrets cache (`[secrets] use_cache`) before the fork: every task process
then finds the HMS connections a task before it fetched, instead of asking the api-server for them
again (one round trip per connection per step; docs/performance.md, "Round trips").

And it lets an idle scheduler rest. The scheduler loops every `scheduler_idle_sleep_time` (0.05 s,
for a fast hop from one step to the next) even with nothing to do, and each loop queries the
metadata database: most of an idle stack's CPU. When nothing is queued, at work in a worker or to
be reported, the executor's heartbeat waits up to `[hms_management] scheduler_rest_seconds` for a
sign of new work: a worker's result, or a NOTIFY on the Management Layer's database, which a
proposal's admission and a resumed or re-driven run send (`records.store`). Work that sends no sign
(a reviewed step resuming, a rescheduled step, a run triggered in the UI) waits at most that long
(docs/performance.md, "An idle stack").

Select it with `[core] executor = hms_management.orchestration.executor.WarmLocalExecutor`.
"""

from __future__ import annotations

import select
import time
from typing import Any

from airflow.configuration import conf
from airflow.executors.local_executor import LocalExecutor

from hms_management.records.store import NEW_WORK

# A workload whose worker never reported back (the worker was killed) stops keeping the scheduler
# awake after this; Airflow fails its task by the missing heartbeats on its own.
FORGET_AFTER_SECONDS = 120.0


def preload_task_imports() -> int:
    """Import what a task process imports, by doing what it does; returns the DAGs parsed."""
    import airflow.sdk.execution_time.task_runner  # noqa: F401 (every task process runs it)
    from airflow.dag_processing.dagbag import DagBag

    # The DAG objects are dropped; what stays is every module their files import. A DAG file that
    # fails here is the DAG processor's to report (import_errors), not the scheduler's.
    bag = DagBag(dag_folder=conf.get("core", "dags_folder"), load_op_links=False)
    return len(bag.dags)


class WarmLocalExecutor(LocalExecutor):
    """LocalExecutor that parses the DAG files once before forking its workers."""

    def start(self) -> None:
        try:
            self.log.info("Pre-imported the task processes' modules by parsing %d DAGs", preload_task_imports())
        except Exception:  # tasks then start cold: slower, never wrong
            self.log.exception("Could not pre-import the task processes' modules")
        from airflow.sdk.execution_time.cache import SecretCache

        SecretCache.init()  # a no-op unless [secrets] use_cache
        super().start()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._at_work: dict[Any, float] = {}  # workload key: when it was handed to a worker

    def _process_workloads(self, workload_list: Any) -> None:
        # Airflow 3.3's LocalExecutor keeps no `running` set for the workloads it hands its workers:
        # what is at work is kept here, from handing over until the worker's result.
        now = time.monotonic()
        self._at_work.update((workload.key, now) for workload in workload_list)
        super()._process_workloads(workload_list)

    def change_state(self, key: Any, state: Any, info: Any = None, remove_running: bool = True) -> None:
        self._at_work.pop(key, None)
        super().change_state(key, state, info, remove_running)

    def sync(self) -> None:
        super().sync()
        if self._idle():
            self.rest()

    def _idle(self) -> bool:
        """Nothing waiting for a worker, at work in one, or to report to the scheduler."""
        at_work = self._at_work
        for key, since in list(at_work.items()):
            if time.monotonic() - since > FORGET_AFTER_SECONDS:  # its worker died unheard
                del at_work[key]
        return not (self.queued_tasks or at_work or self.event_buffer)

    def rest(self) -> None:
        """Wait for a sign of new work, at most `scheduler_rest_seconds` (0: never)."""
        from hms_management.orchestration.config import settings

        seconds = settings().scheduler_rest_seconds
        if seconds <= 0:
            return
        try:
            listener = self._listener()
            ready, _, _ = select.select([listener, self.result_queue._reader], [], [], seconds)
            if listener in ready:
                listener.poll()
                listener.notifies.clear()
        except Exception as error:  # the records' database is away: loop as Airflow does, never stall
            if self._listening is not None:  # said once per outage, not twenty times a second
                self.log.warning("Cannot hear of new work (%s); the scheduler loops without resting", error)
            self._listening = None

    _listening = False  # False: never connected; None: lost

    def _listener(self):
        """A connection of its own to the Management Layer's database, listening for new work."""
        if not self._listening:
            from hms_management.orchestration.records import records

            connection = records(pooled=True).engine.raw_connection().dbapi_connection
            connection.autocommit = True
            connection.cursor().execute(f"LISTEN {NEW_WORK}")
            self._listening = connection
        return self._listening
