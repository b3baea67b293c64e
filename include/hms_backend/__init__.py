"""The reference HMS backend: governance, policy, notifications, audit and backlog in one service.

A small real FastAPI service with durable SQLite storage that stands in for the HMS platform's
services in local runs, tests and benchmarks. It can be told to misbehave (faults, latency) and it
reports per route how many calls it had in flight at once, so a test can prove a pool budget.
"""

from hms_backend.app import create_app
from hms_backend.settings import Settings

__all__ = ["Settings", "create_app"]
