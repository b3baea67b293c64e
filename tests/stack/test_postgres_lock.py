"""A postmaster.pid left by a power cut never stops the next `make run` (no server started here:
the lock file is what PostgreSQL, pg_ctl and the wheel read)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil

from hms_stack.postgres import EmbeddedPostgres

STARTS_NO_STACK = True  # conftest: runs in `make test-unit` too


def database_in(tmp: Path) -> EmbeddedPostgres:
    database = EmbeddedPostgres(tmp / ".state" / "postgres")
    database.pgdata.mkdir(parents=True)
    return database


def lock_naming(tmp: Path, pid: int) -> EmbeddedPostgres:
    database = database_in(tmp)
    (database.pgdata / "postmaster.pid").write_text(f"{pid}\n{database.pgdata}\n")
    return database


def test_a_lock_naming_a_zombie_is_removed(tmp_path):
    # A postmaster killed with its launcher stays a zombie until PID 1 reaps it.
    child = subprocess.Popen(["true"])
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    database = lock_naming(tmp_path, child.pid)

    assert database.forget_dead_postmaster()
    assert not (database.pgdata / "postmaster.pid").exists()
    child.wait()


def test_a_lock_naming_a_process_that_is_gone_is_removed(tmp_path):
    child = subprocess.Popen(["true"])
    child.wait()
    database = lock_naming(tmp_path, child.pid)

    assert database.forget_dead_postmaster()
    assert not (database.pgdata / "postmaster.pid").exists()


def test_a_lock_naming_a_live_server_in_its_data_directory_is_kept(tmp_path):
    database = lock_naming(tmp_path, 0)
    server = subprocess.Popen(["sleep", "30"], cwd=database.pgdata)  # stands in for a live postmaster
    try:
        (database.pgdata / "postmaster.pid").write_text(f"{server.pid}\n{database.pgdata}\n")
        assert not database.forget_dead_postmaster()
        assert (database.pgdata / "postmaster.pid").exists()
    finally:
        server.kill()
        server.wait()


def test_a_lock_whose_pid_was_reused_by_another_program_is_removed(tmp_path):
    database = lock_naming(tmp_path, 0)
    other = subprocess.Popen(["sleep", "30"], cwd=tmp_path)  # alive, but not working in the data directory
    try:
        (database.pgdata / "postmaster.pid").write_text(f"{other.pid}\n{database.pgdata}\n")
        assert database.forget_dead_postmaster()
    finally:
        other.kill()
        other.wait()


def test_the_sockets_lock_naming_a_zombie_goes_too(tmp_path):
    # PostgreSQL also locks its socket, in the data directory here; it names the dead server alike
    # and refuses to start while it is there ("Is another postmaster (PID …) using socket file").
    child = subprocess.Popen(["true"])
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    database = lock_naming(tmp_path, child.pid)
    (database.pgdata / ".s.PGSQL.5432.lock").write_text(f"{child.pid}\n{database.pgdata}\n")

    assert database.forget_dead_postmaster()
    assert list(database.pgdata.iterdir()) == []
    child.wait()


def test_the_sockets_lock_alone_is_removed_when_its_server_is_gone(tmp_path):
    child = subprocess.Popen(["true"])
    child.wait()
    database = database_in(tmp_path)
    (database.pgdata / ".s.PGSQL.5432.lock").write_text(f"{child.pid}\n{database.pgdata}\n")

    assert database.forget_dead_postmaster()
    assert not (database.pgdata / ".s.PGSQL.5432.lock").exists()
