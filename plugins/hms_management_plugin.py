"""Registers the Management Layer's additions to Airflow's own processes.

- api-server: the HMS Management API at /management, and the admission check that refuses bad
  proposals on Airflow's own trigger endpoint before a run exists;
- UI: the analysts' desk — *Proposals* in the navigation, and a *Proposal* tab on every run page —
  pages of /management/desk shown in the UI's iframes (signed in by the UI's own cookie);
- scheduler: the listener that keeps each proposal's record in step with its run, and writes the
  outcome into the run note.

Every Airflow process imports this file, task processes too: keep its imports light.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from hms_management.api.admission import ProposalAdmissionMiddleware
from hms_management.api.lazy_app import management_app
from hms_management.orchestration import run_listener


class HmsManagementPlugin(AirflowPlugin):
    name = "hms_management"
    listeners = [run_listener]
    fastapi_apps = [
        {"app": management_app(), "url_prefix": "/management",
         "name": "HMS Management API"},
    ]
    # The UI fills {DAG_ID} and {RUN_ID} of a dag_run view's href (URL-encoded) for the run shown.
    external_views = [
        {"name": "Proposals", "href": "/management/desk", "destination": "nav", "url_route": "proposals",
         "nav_top_level": True, "icon": "/management/desk/static/proposals.svg",
         "icon_dark_mode": "/management/desk/static/proposals-dark.svg"},
        {"name": "Proposal", "href": "/management/desk/runs/{DAG_ID}/{RUN_ID}", "destination": "dag_run",
         "url_route": "proposal", "icon": "/management/desk/static/proposals.svg",
         "icon_dark_mode": "/management/desk/static/proposals-dark.svg"},
    ]
    fastapi_root_middlewares = [
        {"middleware": ProposalAdmissionMiddleware, "name": "Proposal admission (400 on bad proposals)"},
    ]
