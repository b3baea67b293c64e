"""Registers the Management Layer's additions to Airflow's own processes.

- api-server: the HMS Management API at /management, and the admission check that refuses bad
  proposals on Airflow's own trigger endpoint before a run exists;
- scheduler: the listener that writes each proposal run's outcome into its run note.

Every Airflow process imports this file, task processes too: keep its imports light.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from hms_management.api.admission import ProposalAdmissionMiddleware
from hms_management.api.lazy_app import LazyApp
from hms_management.orchestration import run_notes


class HmsManagementPlugin(AirflowPlugin):
    name = "hms_management"
    listeners = [run_notes]
    fastapi_apps = [
        {"app": LazyApp("hms_management.api.app:app"), "url_prefix": "/management",
         "name": "HMS Management API"},
    ]
    fastapi_root_middlewares = [
        {"middleware": ProposalAdmissionMiddleware, "name": "Proposal admission (400 on bad proposals)"},
    ]
