"""The warm executor parses the DAG folder in the scheduler, so forked task processes skip it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# In a fresh interpreter: what the scheduler process has imported after the pre-import.
PROBE = """
import sys
from hms_management.orchestration.executor import preload_task_imports
assert "airflow.providers.http.hooks.http" not in sys.modules
print(preload_task_imports())
print(all(m in sys.modules for m in (
    "airflow.providers.http.hooks.http", "hms_management.orchestration.operators",
    "hms_management.orchestration.triggers",
    "airflow.sdk.execution_time.task_runner")))
"""


def test_preload_parses_every_dag_and_leaves_their_imports_loaded(tmp_path):
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": str(Path(sys.executable).parent)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    dags, loaded = out.stdout.split()[-2:]
    assert (dags, loaded) == (str(len(list((ROOT / "dags").glob("*.py")))), "True")


def test_a_broken_dag_folder_does_not_stop_the_scheduler_and_the_secrets_cache_starts_before_the_workers(
        tmp_path, monkeypatch):
    from airflow.sdk.execution_time.cache import SecretCache

    from hms_management.orchestration import executor

    monkeypatch.setattr(executor, "preload_task_imports", lambda: 1 / 0)
    started = []
    monkeypatch.setattr(SecretCache, "init", classmethod(lambda cls: started.append("secrets cache")))
    monkeypatch.setattr(executor.LocalExecutor, "start", lambda self: started.append("workers"))
    executor.WarmLocalExecutor(parallelism=1).start()
    assert started == ["secrets cache", "workers"]
