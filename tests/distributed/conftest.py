"""A distributed stack (PostgreSQL, Redis, two Celery workers) of its own for the fault tests.

Only `make test-distributed` runs these (HMS_STACK=distributed): a plain `make test` skips them
rather than start a second kind of stack.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hms_stack.distributed import DistributedStack
from hms_stack.stack import free_port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("HMS_STACK") == "distributed":
        return
    skip = pytest.mark.skip(reason="needs the distributed stack: make test-distributed")
    for item in items:
        if "tests/distributed/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[DistributedStack]:
    # Not under pytest's tmp root: any pytest session started meanwhile makes that root private
    # (0700) again, and PostgreSQL, which runs as a user of its own, loses its data directory.
    folder = Path(tempfile.mkdtemp(prefix="hms-distributed-"))
    live = DistributedStack(state=folder / ".state", api_port=free_port(), hms_port=free_port(),
                            redis_port=free_port(), workers=2)
    live.start(log=lambda line: print(f"[stack] {line}", file=sys.stderr))
    yield live
    live.stop()
    if request.session.testsfailed:
        print(f"[stack] kept for the post-mortem: {folder}", file=sys.stderr)
    else:
        shutil.rmtree(folder, ignore_errors=True)
