"""An Execution-API request's route, the same for the access-log count (`measure`) and the profile
(`profile_hooks`): ids replaced by their names, so that each route is one row."""

from __future__ import annotations

import re

TASK_INSTANCE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NAMED = ((TASK_INSTANCE_ID, "{id}"),
          (re.compile(r"^/execution/connections/[^/?\s]+"), "/execution/connections/{conn_id}"),
          (re.compile(r"^/execution/dag-runs/[^/]+/[^/?\s]+"), "/execution/dag-runs/{dag_id}/{run_id}"))


def execution_route(method: str, path: str) -> str:
    """E.g. `PATCH /execution/task-instances/{id}/run` for a path under /execution/."""
    for pattern, name in _NAMED:
        path = pattern.sub(name, path)
    return f"{method} {path}"
