"""Registers the Management Layer's additions to Airflow's own processes.

- api-server: the admission check that refuses bad proposals before a run exists;
- scheduler: the listener that writes each proposal run's outcome into its run note.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from hms_management import run_notes
from hms_management.admission import ProposalAdmissionMiddleware


class HmsManagementPlugin(AirflowPlugin):
    name = "hms_management"
    listeners = [run_notes]
    fastapi_root_middlewares = [
        {"middleware": ProposalAdmissionMiddleware, "name": "Proposal admission (400 on bad proposals)"},
    ]
