"""The profilers of `python -m hms_bench.profile`, inside the processes of a bench stack.

`profile_site/sitecustomize.py` imports this module in every Python process of a stack started
with that folder on its PYTHONPATH and HMS_PROFILE_DIR set; nothing else ever does. It profiles only
while the profiling window is open (`WINDOW` in the profile folder, which names the clock), so the
stack's start-up and warm-up stay out:

- **Task processes** (the scheduler's tree): each is forked from an executor worker, which is forked
  from the scheduler. In the worker, after its fork, Airflow's task runner (already imported by the
  warm executor) gets a `main` that runs the real one under cProfile and writes the stats and the
  task's id, with its CPU and wall seconds, to the profile folder. The whole task process is seen,
  from its start-up message to its last state report, unlike a sampler polling for new children.
- **The api-server**: yappi, on the CPU clock across all threads, each function call tagged with
  the route of the request it serves (a context variable set where a request enters the app, which
  the threads that serve sync handlers inherit). When the window closes each process writes its
  figures by route.
"""

from __future__ import annotations

import contextvars
import cProfile
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hms_bench.routes import execution_route
from hms_stack.processes import COMPONENT_MARK

WINDOW = "window"  # exists while profiling; its text is the task processes' clock: "cpu" or "wall"
CLOSED = "closed"  # the api-server writes its figures when this appears
POLL_S = 0.2

TASK_RUNNER = "airflow.sdk.execution_time.task_runner"
OUTSIDE = "outside any request (event loop, uvicorn, background threads)"


def folder() -> Path:
    return Path(os.environ["HMS_PROFILE_DIR"])


def install() -> None:
    component = os.environ.get(COMPONENT_MARK)
    if component == "scheduler":
        os.register_at_fork(after_in_child=_profile_task_processes)
    elif component == "api-server":
        _profile_api_server()


# -- task processes -------------------------------------------------------------------------------

def _profile_task_processes() -> None:
    """In a child of the scheduler's tree: make the task runner's `main` profile itself (once)."""
    runner = sys.modules.get(TASK_RUNNER)
    if runner is None or getattr(runner.main, "profiled", False):
        return
    real_main, real_startup = runner.main, runner.startup
    task: dict[str, Any] = {}

    def startup(*args: Any, **kwargs: Any) -> Any:
        ti, context, log = real_startup(*args, **kwargs)
        task.update(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, try_number=ti.try_number)
        return ti, context, log

    def main() -> None:
        window = folder() / WINDOW
        if not window.exists():
            return real_main()
        clock = window.read_text().strip() or "cpu"
        profiler = cProfile.Profile(time.process_time if clock == "cpu" else time.perf_counter)
        wall, cpu = time.perf_counter(), time.process_time()
        profiler.enable()
        try:
            return real_main()
        finally:
            profiler.disable()
            name = f"task-{os.getpid()}-{time.monotonic_ns()}"  # a pid may come again
            profiler.dump_stats(folder() / f"{name}.prof")
            (folder() / f"{name}.json").write_text(json.dumps(
                {**task, "clock": clock, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}))

    main.profiled = True  # type: ignore[attr-defined]
    runner.main, runner.startup = main, startup


# -- the api-server -------------------------------------------------------------------------------

_route = contextvars.ContextVar("hms_profile_route", default=0)
_routes: dict[str, int] = {OUTSIDE: 0}


def route_of(method: str, path: str) -> str:
    """A request's route: the Execution API's by template, ours and the REST API's by area."""
    if path.startswith("/execution/"):
        return execution_route(method, path)
    if path.startswith("/management"):
        return "/management (ours)"
    if path.startswith("/api/v2/"):
        return "REST API /api/v2 (the benchmark's triggers and polls)"
    return f"other: {path.split('/')[1] if '/' in path else path}"


def _tag(scope: dict[str, Any]) -> int:
    route = route_of(scope.get("method", ""), scope.get("path", ""))
    return _routes.setdefault(route, len(_routes))


def _profile_api_server() -> None:
    import yappi
    from starlette.middleware.errors import ServerErrorMiddleware

    real_call = ServerErrorMiddleware.__call__

    async def __call__(self: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # The outermost app names the request; a mounted app (the Execution API) keeps its name.
        if scope["type"] == "http" and _route.get() == 0:
            _route.set(_tag(scope))
        await real_call(self, scope, receive, send)

    ServerErrorMiddleware.__call__ = __call__
    yappi.set_clock_type("cpu")
    yappi.set_tag_callback(_route.get)
    threading.Thread(target=_api_window, args=(yappi,), name="hms-profile", daemon=True).start()


def _api_window(yappi: Any) -> None:
    """Profile each window from its opening to its closing, then write its figures by route."""
    while True:
        _wait_for(lambda: (folder() / WINDOW).exists())
        yappi.clear_stats()
        cpu = time.process_time()
        yappi.start(builtins=False, profile_threads=True)
        _wait_for(lambda: (folder() / CLOSED).exists())
        yappi.stop()
        cpu = time.process_time() - cpu
        by_route = {}
        for route, tag in list(_routes.items()):
            functions = sorted(yappi.get_func_stats(filter={"tag": tag}), key=lambda f: -f.tsub)
            if functions:
                by_route[route] = {"cpu_s": sum(f.tsub for f in functions),
                                   "top": [{"function": f"{f.name} ({short_path(f.module)}:{f.lineno})",
                                            "self_s": f.tsub} for f in functions[:8]]}
        (folder() / f"api-{os.getpid()}.json").write_text(json.dumps({"process_cpu_s": cpu, "by_route": by_route}))
        _wait_for(lambda: not (folder() / CLOSED).exists())


def _wait_for(condition: Any) -> None:
    while not condition():
        time.sleep(POLL_S)


def short_path(module: str) -> str:
    """A module's file from its package down (the folders up to site-packages/, include/ or the
    standard library's dropped)."""
    for marker in ("site-packages/", "include/"):
        if marker in module:
            return module.split(marker, 1)[1]
    return re.sub(r"^.*/lib/python3\.\d+/", "", module)
