"""The /management app as the plugin mounts it: light to import, loaded at its first request.

Every Airflow process loads the plugins folder, task processes included; the /management app
pulls in Airflow's API modules, which only the api-server needs. The plugin therefore mounts a
small FastAPI app that imports the real one at its first request. Being a FastAPI app, it also
gets the api-server's lifespan (Airflow enters the lifespan of every FastAPI app a plugin mounts):
the records keeper (`keeper`) runs for as long as the api-server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import FastAPI


class LazyApp:
    def __init__(self, target: str) -> None:
        self.target = target  # "package.module:attribute"
        self._app: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            module, _, attribute = self.target.partition(":")
            self._app = getattr(importlib.import_module(module), attribute)
        await self._app(scope, receive, send)


@contextlib.asynccontextmanager
async def _records_keeper(app: FastAPI) -> AsyncGenerator[None, None]:
    from hms_management.api.keeper import keep

    keeping = asyncio.create_task(keep(), name="hms-records-keeper")
    try:
        yield
    finally:
        keeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeping


def management_app(target: str = "hms_management.api.app:app") -> FastAPI:
    """The app mounted at /management: the records keeper's lifespan around the lazily loaded app."""
    app = FastAPI(lifespan=_records_keeper, openapi_url=None, docs_url=None, redoc_url=None)
    app.mount("", LazyApp(target))
    return app
