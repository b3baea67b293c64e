"""Command line of the reference HMS backend: serve it, mint a token for it, create its secret.

Typical use, from the project root with PYTHONPATH=include (or the project installed):

python -m hms_backend new-secret .state/hms_secret
python -m hms_backend serve --data-dir .state/hms_backend --secret-file .state/hms_secret
python -m hms_backend token --secret-file .state/hms_secret
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hms_backend.auth import generate_secret, mint_token
from hms_backend.settings import Settings, SettingsError, read_secret

SECONDS_PER_DAY = 86_400


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hms_backend.app import create_app
    from hms_backend.storage import Storage

    settings = Settings(data_dir=args.data_dir, jwt_secret=read_secret(args.secret_file))
    # A database the backend cannot use is refused now, with a message, rather than in the app's start.
    Storage.open(settings.database_path).close()
    app = create_app(settings)
    print(f"hms_backend: serving http://{args.host}:{args.port} (data in {args.data_dir})", file=sys.stderr)
    # One process: faults, stats and idempotency locks live in it, and SQLite wants one writer.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def token(args: argparse.Namespace) -> int:
    ttl_seconds = round(args.ttl_days * SECONDS_PER_DAY)
    print(mint_token(read_secret(args.secret_file), args.subject, ttl_seconds))
    return 0


def new_secret(args: argparse.Namespace) -> int:
    path: Path = args.file
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Created with its final mode: the secret is never readable by others, not even briefly.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"hms_backend: kept the existing secret in {path}", file=sys.stderr)
        return 0
    with os.fdopen(descriptor, "w") as file:
        file.write(generate_secret() + "\n")
    print(f"hms_backend: wrote a new secret to {path}", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m hms_backend", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the backend over HTTP")
    run.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, loopback only)")
    run.add_argument("--port", type=int, default=8090, help="port to bind (default: %(default)s)")
    run.add_argument("--data-dir", type=Path, required=True, help="folder of the SQLite database (created)")
    run.add_argument("--secret-file", type=Path, required=True, help="file holding the JWT secret")
    run.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    run.set_defaults(handler=serve)

    mint = commands.add_parser("token", help="print a JWT the backend accepts")
    mint.add_argument("--secret-file", type=Path, required=True, help="file holding the JWT secret")
    mint.add_argument("--subject", default="airflow", help="who the token is for (default: %(default)s)")
    mint.add_argument("--ttl-days", type=float, default=365, help="days until it expires (default: %(default)s)")
    mint.set_defaults(handler=token)

    create = commands.add_parser("new-secret", help="write a random JWT secret to FILE unless it exists")
    create.add_argument("file", type=Path, metavar="FILE")
    create.set_defaults(handler=new_secret)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except SettingsError as err:
        cli.exit(2, f"hms_backend: {err}\n")


if __name__ == "__main__":
    sys.exit(main())
