"""An ASGI app imported at its first request.

Every Airflow process loads the plugins folder, task processes included; the /management app
pulls in FastAPI and Airflow's API modules (about 2 s of imports), which only the api-server needs.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyApp:
    def __init__(self, target: str) -> None:
        self.target = target  # "package.module:attribute"
        self._app: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            module, _, attribute = self.target.partition(":")
            self._app = getattr(importlib.import_module(module), attribute)
        await self._app(scope, receive, send)
