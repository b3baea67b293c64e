"""LocalExecutor whose task processes start warm.

Every task runs in a process forked from a LocalExecutor worker, which is forked from the
scheduler, and the first thing a task process does is parse its DAG file. Cold, that parse (the
HTTP provider, requests, aiohttp, Airflow's lazily imported decorators) cost about 0.5 s of a
proposal step that otherwise takes 0.1 s. Parsing the DAG folder once in the scheduler, before the
workers are forked, leaves all of it imported in every task process for free (copy-on-write), the
way Airflow's DAG processor pre-imports modules before it forks a parser
(`[dag_processor] parsing_pre_import_modules`).

Select it with `[core] executor = hms_management.orchestration.executor.WarmLocalExecutor`.
"""

from __future__ import annotations

from airflow.configuration import conf
from airflow.executors.local_executor import LocalExecutor


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
        super().start()
