"""The rendered compose file (`env_file`, `rendered`, `services`) for every test of this folder."""

from tests.compose.test_docker_compose import env_file, rendered, services  # noqa: F401 (fixtures)
