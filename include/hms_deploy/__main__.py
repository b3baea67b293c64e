"""`python -m hms_deploy container-init`: the container deployment's one-shot set-up (airflow-init)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hms_deploy.container import ContainerSetup


def main() -> int:
    root = Path(os.environ.get("HMS_ROOT", "/opt/hms"))
    parser = argparse.ArgumentParser(prog="python -m hms_deploy", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["container-init"])
    parser.add_argument("--users-dir", type=Path, default=Path("/opt/airflow/users"),
                        help="where the api-server reads the users' passwords file")
    parser.add_argument("--pools", type=Path, default=root / "config" / "pools.json")
    parser.add_argument("--hms-host", default=ContainerSetup.hms_host)
    parser.add_argument("--hms-port", type=int, default=ContainerSetup.hms_port)
    parser.add_argument("--api-host", default=ContainerSetup.api_host)
    parser.add_argument("--api-port", type=int, default=ContainerSetup.api_port)
    args = parser.parse_args()
    ContainerSetup(users_dir=args.users_dir, pools_file=args.pools, hms_host=args.hms_host, hms_port=args.hms_port,
                   api_host=args.api_host, api_port=args.api_port).set_up()
    return 0


if __name__ == "__main__":
    sys.exit(main())
