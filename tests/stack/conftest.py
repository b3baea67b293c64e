"""Stacks of their own for the launcher's tests: a folder each, not under pytest's tmp root."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # A module that starts no stack (STARTS_NO_STACK = True: lock files, the wheel) stays a unit test.
        if "tests/stack/" in str(item.fspath) and not getattr(item.module, "STARTS_NO_STACK", False):
            item.add_marker(pytest.mark.stack)
            item.add_marker(pytest.mark.e2e)  # `make test-unit` starts no stack


@pytest.fixture
def folder(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder for a stack: not under pytest's tmp root (another pytest session makes that
    private, and PostgreSQL runs as a user of its own); kept when the test failed."""
    path = Path(tempfile.mkdtemp(prefix="hms-stack-"))
    yield path
    if getattr(request.node, "failed", False):
        print(f"kept for the post-mortem: {path}", file=sys.stderr)
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        item.failed = True
    return report
