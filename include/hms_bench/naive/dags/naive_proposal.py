"""
# Naive proposal (benchmark baseline)

The proposal workflow as a user would first write it by hand: PythonOperators calling the HMS
services with `requests`, an HttpSensor in poke mode waiting for the governance decision, Airflow's
default settings. No pools, no retries policy, no idempotency keys, no admission check: only the
calls, for a fair speed comparison (see docs/performance.md).
"""

from __future__ import annotations

from datetime import datetime

import requests
from airflow.providers.http.sensors.http import HttpSensor
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, BaseHook, chain

NAIVE_DAG_ID = "naive_proposal"


def call_hms(conn_id: str, path: str, body: dict) -> dict:
    conn = BaseHook.get_connection(conn_id)
    response = requests.post(f"http://{conn.host}:{conn.port}{path}", json=body, headers=conn.extra_dejson,
                             timeout=10)
    response.raise_for_status()
    return response.json()


def submit_to_governance(**context) -> dict:
    proposal = context["dag_run"].conf
    if not proposal.get("id") or not proposal.get("rule"):
        raise ValueError("a proposal needs an id and a rule")
    return call_hms("hms_governance", "/gov/validate", {"proposal": proposal})


def apply_policy(**context) -> dict:
    return call_hms("hms_policy", "/svc/policy", context["dag_run"].conf)


def notify_officers(**context) -> dict:
    proposal = context["dag_run"].conf
    return call_hms("hms_notifications", "/notifications",
                    {"message": f"Policy #{proposal['id']} live", "proposalId": proposal["id"]})


def record_audit(**context) -> dict:
    proposal = context["dag_run"].conf
    return call_hms("hms_audit", "/audit/log",
                    {"proposalId": proposal["id"], "action": "proposal.orchestrated", "outcome": "completed"})


with DAG(NAIVE_DAG_ID, schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
         is_paused_upon_creation=False, doc_md=__doc__, tags=["benchmark"]):
    submit = PythonOperator(task_id="submit", python_callable=submit_to_governance)
    wait_for_governance = HttpSensor(
        task_id="wait_for_governance",
        http_conn_id="hms_governance",
        endpoint="/gov/decisions/{{ ti.xcom_pull(task_ids='submit')['decision_id'] }}",
        response_check=lambda response: response.json()["status"] == "approved",
        mode="poke",
        poke_interval=5,
    )
    calls = [PythonOperator(task_id=f.__name__, python_callable=f)
             for f in (apply_policy, notify_officers, record_audit)]
    chain(submit, wait_for_governance, *calls)
