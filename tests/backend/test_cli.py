"""The command line: secrets, tokens, and the real server over HTTP."""

from __future__ import annotations

import signal
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hms_backend.__main__ import main
from hms_backend.auth import verify_authorization
from hms_backend.settings import DATABASE_FILE


def test_new_secret_is_written_private_and_kept_on_a_second_run(tmp_path: Path):
    secret_file = tmp_path / "state" / "hms_secret"

    assert main(["new-secret", str(secret_file)]) == 0
    first = secret_file.read_text()
    assert main(["new-secret", str(secret_file)]) == 0

    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(first.strip()) >= 64
    assert secret_file.read_text() == first


def test_token_is_signed_with_the_secret_file(tmp_path: Path, capsys):
    secret_file = tmp_path / "hms_secret"
    main(["new-secret", str(secret_file)])

    main(["token", "--secret-file", str(secret_file), "--subject", "bench", "--ttl-days", "1"])

    claims = verify_authorization(f"Bearer {capsys.readouterr().out.strip()}", secret_file.read_text().strip())
    assert claims["sub"] == "bench"
    assert claims["exp"] - claims["iat"] == 86_400


def test_serve_without_a_secret_file_says_how_to_make_one(tmp_path: Path, capsys):
    missing = tmp_path / "missing"

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--data-dir", str(tmp_path), "--secret-file", str(missing)])

    assert exit_info.value.code == 2
    assert f"new-secret {missing}" in capsys.readouterr().err


def test_serve_over_a_database_of_another_schema_says_so_before_it_listens(tmp_path: Path, capsys):
    secret_file = tmp_path / "hms_secret"
    main(["new-secret", str(secret_file)])
    database = tmp_path / "data" / DATABASE_FILE
    database.parent.mkdir()
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE decisions (decision_id TEXT PRIMARY KEY)")

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--data-dir", str(database.parent), "--secret-file", str(secret_file)])

    assert exit_info.value.code == 2
    said = capsys.readouterr().err
    assert str(database) in said
    assert "start afresh" in said


@pytest.fixture
def server(live_backend) -> Iterator[tuple[str, Path]]:
    """`python -m hms_backend serve` on a free loopback port: its base URL and its secret file."""
    yield live_backend.base_url, live_backend.secret_file
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why it stopped.
    assert live_backend.stop() in (0, -signal.SIGTERM)
    # The app closed its database on the way out: SQLite folds the WAL file back in on close.
    assert live_backend.database_path.exists()
    assert not live_backend.database_path.with_name(live_backend.database_path.name + "-wal").exists()


def test_real_server_answers_over_http(server: tuple[str, Path], capsys):
    base_url, secret_file = server
    capsys.readouterr()
    main(["token", "--secret-file", str(secret_file)])
    auth = {"Authorization": f"Bearer {capsys.readouterr().out.strip()}"}

    with httpx.Client(base_url=base_url, timeout=5) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.post("/svc/policy", json={"id": "p-1", "rule": "r"}).status_code == 401
        applied = client.post("/svc/policy", json={"id": "p-1", "rule": "r"}, headers=auth)
        assert (applied.status_code, applied.json()["version"]) == (200, 1)
        assert client.get("/stats").json()["routes"]["POST /svc/policy"]["side_effects"] == 1
