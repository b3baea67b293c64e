"""Test-wide environment: Airflow reads this project's airflow.cfg, never a home folder's.

The unit and DAG tests get a metadata database that does not exist, so anything that touches the
database at parse time fails loudly. The end-to-end tests start a stack of their own (tests/e2e).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_home = Path(tempfile.mkdtemp(prefix="hms-tests-"))

os.environ.update(
    {
        "HMS_ROOT": str(ROOT),
        "HMS_STATE": str(_home),
        "AIRFLOW_HOME": str(_home / "airflow"),
        "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://nobody@/nowhere?host={_home}/no-such-socket",
    }
)
