"""The metadata database's set-up, in one process: `airflow db migrate`, the Management Layer's
indexes, `airflow pools import` and `airflow connections import --overwrite`.

Each step runs as the `airflow` command runs it (Airflow's own CLI parser and command functions),
only in one interpreter: every `airflow` command spends about 3 s importing Airflow, and four of
them were 15 s of each stack's start (`make run`, every test stack, the container's init).

    python -m hms_deploy.database POOLS_FILE CONNECTIONS_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path


def prepare(pools_file: Path, connections_file: Path) -> None:
    from airflow.cli import cli_parser

    from hms_management.orchestration import metadata_indexes

    parser = cli_parser.get_parser()

    def airflow(*argv: str) -> None:
        print("airflow", *argv, flush=True)
        args = parser.parse_args(argv)
        args.func(args)

    airflow("db", "migrate")
    metadata_indexes.main()  # after every migration: one that rebuilds a table drops them
    airflow("pools", "import", str(pools_file))
    airflow("connections", "import", "--overwrite", str(connections_file))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m hms_deploy.database POOLS_FILE CONNECTIONS_FILE")
    prepare(Path(sys.argv[1]), Path(sys.argv[2]))
