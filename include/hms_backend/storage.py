"""All of the backend's SQL, as plain methods on one SQLite database.

One connection, shared by every request and guarded by a lock: each method is one short
transaction, so requests queue for microseconds instead of fighting over SQLite's file lock.
WAL with synchronous=NORMAL keeps commits cheap and survives a crash of the process (only an OS
crash may lose the last commits).

Each write that applies a side effect returns the answer its caller gets, shaped by the route's
answer rule, and keeps that answer for the request's Idempotency-Key in the same transaction (see
idempotency.py).

The schema has no migrations before the backend's first release: a database made by another
schema (PRAGMA user_version) is refused at start, with a message saying to start afresh.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from hms_backend.governance import EVERY_SERVICE, PROPOSAL_ENDED, REVIEW, REVOCABLE, REVOKED
from hms_backend.idempotency import Answer, UnkeptAnswer, current_keyed_request
from hms_backend.settings import SettingsError

PENDING = "pending"
TAKEN = "taken"
REJECTED = "rejected"

SCHEMA_VERSION = 1  # PRAGMA user_version of the databases this schema makes

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS decisions (
    decision_id   TEXT PRIMARY KEY,
    proposal_id   TEXT NOT NULL,
    proposal      TEXT NOT NULL,  -- JSON, as governance saw it
    status        TEXT NOT NULL,  -- approved | denied | review | revoked
    reason        TEXT NOT NULL,
    reviewer      TEXT,
    created_at    TEXT NOT NULL,
    decided_at    TEXT,           -- null while in review
    decided_seq   INTEGER,        -- order in the feed of reviewers' decisions and revocations; null for the others
    revoked_by    TEXT,
    revoked_at    TEXT,
    revoke_reason TEXT
);
CREATE INDEX IF NOT EXISTS decisions_by_proposal ON decisions (proposal_id);
CREATE INDEX IF NOT EXISTS decisions_by_status_and_age ON decisions (status, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS decisions_by_decided_seq ON decisions (decided_seq) WHERE decided_seq IS NOT NULL;

CREATE TABLE IF NOT EXISTS suspensions (
    service      TEXT PRIMARY KEY,  -- policy | notifications | all
    reason       TEXT NOT NULL,
    suspended_by TEXT NOT NULL,
    since        TEXT NOT NULL      -- when it was first suspended; a new reason keeps it
);

CREATE TABLE IF NOT EXISTS policies (
    policy_id     TEXT PRIMARY KEY,
    proposal_id   TEXT NOT NULL,
    version       INTEGER NOT NULL,  -- per proposal
    scope         TEXT NOT NULL,
    scope_version INTEGER NOT NULL,  -- per scope: the highest is the scope's live rule
    rule          TEXT NOT NULL,     -- JSON
    proposal      TEXT NOT NULL,     -- JSON
    applied_at    TEXT NOT NULL,
    UNIQUE (proposal_id, version),
    UNIQUE (scope, scope_version)
);

CREATE TABLE IF NOT EXISTS notifications (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT NOT NULL UNIQUE,
    proposal_id     TEXT,
    officer_group   TEXT,           -- the body's group, when it names one
    body            TEXT NOT NULL,  -- JSON, as sent
    sent_at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_by_proposal ON notifications (proposal_id);

CREATE TABLE IF NOT EXISTS audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id    TEXT NOT NULL UNIQUE,
    proposal_id TEXT NOT NULL,
    entry       TEXT NOT NULL,  -- JSON, as sent
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_by_proposal ON audit_log (proposal_id);
-- The audit log is evidence: the database itself refuses to rewrite it.
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE IF NOT EXISTS backlog (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    proposal   TEXT NOT NULL,  -- JSON, as queued
    status     TEXT NOT NULL,  -- pending | taken | rejected
    reason     TEXT,
    run_id     TEXT,
    queued_at  TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS backlog_by_status ON backlog (status, queued_at, seq);

CREATE TABLE IF NOT EXISTS idempotent_responses (
    path        TEXT NOT NULL,
    key         TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    body        BLOB NOT NULL,
    stored_at   TEXT NOT NULL,
    PRIMARY KEY (path, key)
);

PRAGMA user_version = {SCHEMA_VERSION};
"""

# The next number in the feed of decided reviews and revocations. Taken in the transaction that
# decides, under the write lock: the feed never shows a number before every smaller one is committed.
NEXT_IN_FEED = "(SELECT COALESCE(MAX(decided_seq), 0) + 1 FROM decisions)"


@dataclass(frozen=True)
class Write:
    """A record after a write that may have had nothing to do (the record was already so)."""

    record: dict[str, Any]
    applied: bool


AnswerRule = Callable[[Write], Answer]
"""How a route answers a write: an Answer, or an ApiError (which rolls the write back)."""


def record_answer(write: Write) -> Answer:
    """The plain answer: 200 with the record."""
    return Answer.json(write.record)


@dataclass(frozen=True)
class Answered:
    """What a write answered, and whether it changed anything (a side effect to count)."""

    answer: Answer
    applied: bool


class NoSuchRecord(LookupError):
    """A write named a record that does not exist; the message says which."""


class DatabaseOfAnotherSchema(SettingsError):
    """The data dir holds a database this backend did not make; the message says what to do."""


def timestamp() -> str:
    """Now, as every time is stored and answered: UTC ISO-8601 with milliseconds, comparable as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _new_id() -> str:
    return uuid.uuid4().hex


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Storage:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Storage:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (see _transaction), never implicit.
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")  # another process reading, say sqlite3 CLI
        try:
            _create_schema(connection, path)
        except BaseException:
            connection.close()
            raise
        return cls(connection)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Generator[sqlite3.Connection, None, None]:
        """A write. Under an Idempotency-Key, the one write of the request, and it must answer."""
        keyed = current_keyed_request()
        if keyed is not None and keyed.answer is not None:
            raise UnkeptAnswer(f"{keyed.path} already answered its Idempotency-Key; a second write would not be kept")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                if keyed is not None and keyed.answer is None:
                    raise UnkeptAnswer(f"a write for {keyed.path} did not keep its answer for its Idempotency-Key")
                self._db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT may have ended the transaction already; the connection must not stay in one.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if keyed is not None:
                    keyed.answer = None  # rolled back: never given
                raise

    def _answer(self, db: sqlite3.Connection, write: Write, rule: AnswerRule) -> Answered:
        """The write's answer, kept for the request's Idempotency-Key by the write's own transaction."""
        answer = rule(write)
        keyed = current_keyed_request()
        if keyed is not None:
            if answer.keepable:
                db.execute(
                    "INSERT INTO idempotent_responses (path, key, status_code, body, stored_at) VALUES (?, ?, ?, ?, ?)",
                    (keyed.path, keyed.key, answer.status_code, answer.body, timestamp()),
                )
            keyed.answer = answer
        return Answered(answer, write.applied)

    def _select(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # Governance decisions

    def record_decision(
        self, *, proposal: dict[str, Any], status: str, reason: str, answer: AnswerRule = record_answer
    ) -> Answered:
        decision_id, now = _new_id(), timestamp()
        decided_at = None if status == REVIEW else now
        with self._transaction() as db:
            db.execute(
                "INSERT INTO decisions (decision_id, proposal_id, proposal, status, reason, created_at,"
                " decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (decision_id, proposal["id"], _json(proposal), status, reason, now, decided_at),
            )
            row = db.execute("SELECT * FROM decisions WHERE decision_id = ?", (decision_id,)).fetchone()
            return self._answer(db, Write(_decision(row), applied=True), answer)

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        rows = self._select("SELECT * FROM decisions WHERE decision_id = ?", decision_id)
        return _decision(rows[0]) if rows else None

    def decisions(
        self,
        *,
        status: str | None = None,
        proposal_id: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Decisions oldest first; created_after is exclusive, created_before inclusive (timestamps as stored)."""
        rows = self._select(
            "SELECT * FROM decisions WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR proposal_id = ?2)"
            " AND (?3 IS NULL OR created_at > ?3) AND (?4 IS NULL OR created_at <= ?4)"
            " ORDER BY created_at, rowid LIMIT ?5",
            status,
            proposal_id,
            created_after,
            created_before,
            -1 if limit is None else limit,
        )
        return [_decision(row) for row in rows]

    def decided_reviews(self, *, after_seq: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Reviews decided and decisions revoked after the one numbered after_seq, in order; and the last number."""
        rows = self._select(
            "SELECT * FROM decisions WHERE decided_seq > ? ORDER BY decided_seq LIMIT ?", after_seq, limit
        )
        last_seq = rows[-1]["decided_seq"] if rows else after_seq
        return [_decision(row) for row in rows], last_seq

    def settle_review(
        self, decision_id: str, *, status: str, reason: str, reviewer: str, answer: AnswerRule = record_answer
    ) -> Answered:
        """Record a reviewer's decision on a decision in review; applied is false when it was decided already."""
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE decisions SET status = ?, reason = ?, reviewer = ?, decided_at = ?,"
                f" decided_seq = {NEXT_IN_FEED} WHERE decision_id = ? AND status = ?",
                (status, reason, reviewer, timestamp(), decision_id, REVIEW),
            ).rowcount
            row = db.execute("SELECT * FROM decisions WHERE decision_id = ?", (decision_id,)).fetchone()
            if row is None:
                raise NoSuchRecord(f"no decision {decision_id}")
            return self._answer(db, Write(_decision(row), applied=bool(updated)), answer)

    def revoke_decision(
        self, decision_id: str, *, reason: str, by: str, answer: AnswerRule = record_answer
    ) -> Answered:
        """Revoke an approval or an open review; applied is false when the decision is denied or
        revoked already, or when its proposal has ended (the answer rule tells which from the status).

        The revocation takes the next number in the feed, as a reviewer's decision does, so that a
        watcher of parked reviews learns of it; a decision is in the feed once, at its latest change.
        An audit entry in the very millisecond of the decision counts as after it: a revocation that
        may come too late is refused rather than recorded as if it had stopped something.
        """
        revocable = ", ".join("?" * len(REVOCABLE))
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE decisions SET status = ?, revoked_by = ?, revoked_at = ?, revoke_reason = ?,"
                f" decided_seq = {NEXT_IN_FEED}"
                f" WHERE decision_id = ? AND status IN ({revocable}) AND NOT EXISTS (SELECT 1 FROM audit_log"
                "  WHERE audit_log.proposal_id = decisions.proposal_id AND recorded_at >= decisions.created_at"
                "  AND json_extract(entry, '$.action') = ?)",
                (REVOKED, by, timestamp(), reason, decision_id, *REVOCABLE, PROPOSAL_ENDED),
            ).rowcount
            row = db.execute("SELECT * FROM decisions WHERE decision_id = ?", (decision_id,)).fetchone()
            if row is None:
                raise NoSuchRecord(f"no decision {decision_id}")
            return self._answer(db, Write(_decision(row), applied=bool(updated)), answer)

    def decision_for_step(
        self, decision_id: str, *, service: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """A decision and the suspension that covers the service, if any, in one indexed read.

        Of a suspension of the service itself and one of every service, the service's own comes
        first: the more specific reason, and the one still in force when `all` is lifted.
        """
        rows = self._select(
            "SELECT decisions.*, suspensions.service AS suspended_service, suspensions.reason AS suspension_reason,"
            " suspended_by, since FROM decisions LEFT JOIN suspensions ON suspensions.service IN (?2, ?3)"
            " WHERE decision_id = ?1 ORDER BY suspensions.service = ?3 LIMIT 1",
            decision_id,
            service,
            EVERY_SERVICE,
        )
        if not rows:
            return None
        row = rows[0]
        suspension = None
        if row["suspended_service"] is not None:
            suspension = {
                "service": row["suspended_service"],
                "reason": row["suspension_reason"],
                "by": row["suspended_by"],
                "since": row["since"],
            }
        return _decision(row), suspension

    # Suspensions

    def suspend(self, service: str, *, reason: str, by: str, answer: AnswerRule = record_answer) -> Answered:
        """Suspend a service, or give a suspended one a new reason: since stays when it was first suspended."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO suspensions (service, reason, suspended_by, since) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (service) DO UPDATE SET reason = excluded.reason, suspended_by = excluded.suspended_by",
                (service, reason, by, timestamp()),
            )
            row = db.execute("SELECT * FROM suspensions WHERE service = ?", (service,)).fetchone()
            return self._answer(db, Write(_suspension(row), applied=True), answer)

    def lift_suspension(self, service: str, *, answer: AnswerRule = record_answer) -> Answered:
        with self._transaction() as db:
            if not db.execute("DELETE FROM suspensions WHERE service = ?", (service,)).rowcount:
                raise NoSuchRecord(f"{service} is not suspended")
            return self._answer(db, Write({"service": service, "lifted_at": timestamp()}, applied=True), answer)

    def suspensions(self) -> list[dict[str, Any]]:
        rows = self._select("SELECT * FROM suspensions ORDER BY since, service")
        return [_suspension(row) for row in rows]

    # Policies

    def apply_policy(self, proposal: dict[str, Any], *, scope: str, answer: AnswerRule = record_answer) -> Answered:
        """Put the proposal's rule live in its scope: the next version of the proposal and of the scope."""
        policy_id, now = _new_id(), timestamp()
        with self._transaction() as db:
            (version,) = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM policies WHERE proposal_id = ?", (proposal["id"],)
            ).fetchone()
            (scope_version,) = db.execute(
                "SELECT COALESCE(MAX(scope_version), 0) + 1 FROM policies WHERE scope = ?", (scope,)
            ).fetchone()
            rule, sent = _json(proposal["rule"]), _json(proposal)
            db.execute(
                "INSERT INTO policies (policy_id, proposal_id, version, scope, scope_version, rule, proposal,"
                " applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (policy_id, proposal["id"], version, scope, scope_version, rule, sent, now),
            )
            policy = {
                "policy_id": policy_id,
                "version": version,
                "proposal_id": proposal["id"],
                "applied_at": now,
                "scope": scope,
                "scope_version": scope_version,
            }
            return self._answer(db, Write(policy, applied=True), answer)

    def policy_versions(self, proposal_id: str) -> list[dict[str, Any]]:
        rows = self._select(
            "SELECT policy_id, version, scope, scope_version, rule, applied_at FROM policies WHERE proposal_id = ?"
            " ORDER BY version",
            proposal_id,
        )
        return [{**dict(row), "rule": json.loads(row["rule"])} for row in rows]

    def live_rule(self, scope: str) -> dict[str, Any] | None:
        """The scope's live rule: the policy applied last in it."""
        rows = self._select("SELECT * FROM policies WHERE scope = ? ORDER BY scope_version DESC LIMIT 1", scope)
        if not rows:
            return None
        row = rows[0]
        return {
            "scope": row["scope"],
            "rule": json.loads(row["rule"]),
            "version": row["scope_version"],
            "proposal_id": row["proposal_id"],
            "applied_at": row["applied_at"],
            "policy_id": row["policy_id"],
        }

    # Notifications

    def record_notification(self, body: dict[str, Any], *, answer: AnswerRule = record_answer) -> Answered:
        notification_id, now = _new_id(), timestamp()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO notifications (notification_id, proposal_id, officer_group, body, sent_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (notification_id, body.get("proposalId"), body.get("group"), _json(body), now),
            )
            return self._answer(db, Write({"notification_id": notification_id, "sent_at": now}, applied=True), answer)

    def notifications(self, *, proposal_id: str | None, group: str | None = None) -> list[dict[str, Any]]:
        rows = self._select(
            "SELECT * FROM notifications WHERE (?1 IS NULL OR proposal_id = ?1) AND (?2 IS NULL OR officer_group = ?2)"
            " ORDER BY seq",
            proposal_id,
            group,
        )
        return [
            {**json.loads(row["body"]), "notification_id": row["notification_id"], "sent_at": row["sent_at"]}
            for row in rows
        ]

    # Audit log

    def append_audit(self, entry: dict[str, Any], *, answer: AnswerRule = record_answer) -> Answered:
        audit_id, now = _new_id(), timestamp()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO audit_log (audit_id, proposal_id, entry, recorded_at) VALUES (?, ?, ?, ?)",
                (audit_id, entry["proposalId"], _json(entry), now),
            )
            return self._answer(db, Write({"audit_id": audit_id, "recorded_at": now}, applied=True), answer)

    def audit_entries(self, *, proposal_id: str | None) -> list[dict[str, Any]]:
        rows = self._select("SELECT * FROM audit_log WHERE ?1 IS NULL OR proposal_id = ?1 ORDER BY seq", proposal_id)
        return [
            {**json.loads(row["entry"]), "audit_id": row["audit_id"], "recorded_at": row["recorded_at"]} for row in rows
        ]

    # Backlog

    def queue_proposal(self, proposal: dict[str, Any], *, answer: AnswerRule = record_answer) -> Answered:
        """Queue a proposal for the sweep.

        Pending or taken: kept as it is, since the same id is the same proposal. Rejected: queued
        again with the new content, so that a corrected proposal gets another look.
        """
        now = timestamp()
        with self._transaction() as db:
            current = db.execute("SELECT * FROM backlog WHERE id = ?", (proposal["id"],)).fetchone()
            if current is not None and current["status"] != REJECTED:
                return self._answer(db, Write(_backlog_entry(current), applied=False), answer)
            if current is None:
                db.execute(
                    "INSERT INTO backlog (id, proposal, status, queued_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                    (proposal["id"], _json(proposal), PENDING, now, now),
                )
            else:
                db.execute(
                    "UPDATE backlog SET proposal = ?, status = ?, reason = NULL, run_id = NULL, queued_at = ?,"
                    " updated_at = ? WHERE id = ?",
                    (_json(proposal), PENDING, now, now, proposal["id"]),
                )
            row = db.execute("SELECT * FROM backlog WHERE id = ?", (proposal["id"],)).fetchone()
            return self._answer(db, Write(_backlog_entry(row), applied=True), answer)

    def backlog(self, *, status: str, limit: int) -> list[dict[str, Any]]:
        rows = self._select("SELECT * FROM backlog WHERE status = ? ORDER BY queued_at, seq LIMIT ?", status, limit)
        return [_backlog_entry(row) for row in rows]

    def settle_backlog_entry(
        self,
        proposal_id: str,
        *,
        status: str,
        reason: str | None = None,
        run_id: str | None = None,
        redact: list[str] | None = None,
        answer: AnswerRule = record_answer,
    ) -> Answered:
        """Mark a pending entry taken or rejected; an entry already settled keeps how it was settled.
        The values at `redact` (dotted paths into the queued proposal) are not kept.

        The answer rule compares the status to tell a repeat (fine) from a contradiction (taken vs
        rejected).
        """
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE backlog SET status = ?, reason = ?, run_id = ?, updated_at = ? WHERE id = ? AND status = ?",
                (status, reason, run_id, timestamp(), proposal_id, PENDING),
            ).rowcount
            if updated and redact:
                (stored,) = db.execute("SELECT proposal FROM backlog WHERE id = ?", (proposal_id,)).fetchone()
                db.execute("UPDATE backlog SET proposal = ? WHERE id = ?",
                           (_json(redacted(json.loads(stored), redact)), proposal_id))
            row = db.execute("SELECT * FROM backlog WHERE id = ?", (proposal_id,)).fetchone()
            if row is None:
                raise NoSuchRecord(f"no backlog entry {proposal_id}")
            return self._answer(db, Write(_backlog_entry(row), applied=bool(updated)), answer)

    # Idempotency

    def kept_answer(self, path: str, key: str) -> Answer | None:
        rows = self._select("SELECT status_code, body FROM idempotent_responses WHERE path = ? AND key = ?", path, key)
        return Answer(rows[0]["status_code"], bytes(rows[0]["body"])) if rows else None


def _create_schema(db: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a new database; refuse a database made by another schema."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    (tables,) = db.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").fetchone()
    if tables and version != SCHEMA_VERSION:
        raise DatabaseOfAnotherSchema(
            f"{path} was made by another version of the backend (schema {version}, this one makes"
            f" {SCHEMA_VERSION}) and there are no migrations before the first release: move the file away,"
            " or delete the state folder, to start afresh"
        )
    # One transaction: a crash half-way leaves an empty file, not a database of no known schema.
    db.executescript(f"BEGIN IMMEDIATE; {SCHEMA} COMMIT;")


def _decision(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "decision_id": row["decision_id"],
        "proposal_id": row["proposal_id"],
        "status": row["status"],
        "reason": row["reason"],
        "reviewer": row["reviewer"],
        "created_at": row["created_at"],
        "decided_at": row["decided_at"],
        "revoked_by": row["revoked_by"],
        "revoked_at": row["revoked_at"],
        "revoke_reason": row["revoke_reason"],
        "proposal": json.loads(row["proposal"]),
    }


def _suspension(row: sqlite3.Row) -> dict[str, Any]:
    return {"service": row["service"], "reason": row["reason"], "by": row["suspended_by"], "since": row["since"]}


REDACTED = "[redacted]"


def redacted(document: Any, paths: list[str]) -> Any:
    """`document` with the value at each dotted path (`a.b`, `a.items[2].c`) replaced by REDACTED;
    a path that leads nowhere changes nothing."""
    for path in paths:
        steps = [int(part[:-1]) if part.endswith("]") else part
                 for part in re.split(r"\.|\[", path) if part != ""]
        node = document
        for position, step in enumerate(steps):
            found = (step in node) if isinstance(node, dict) else (
                isinstance(node, list) and isinstance(step, int) and step < len(node))
            if not found:
                break
            if position == len(steps) - 1:
                node[step] = REDACTED
            node = node[step]
    return document


def _backlog_entry(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "proposal": json.loads(row["proposal"]),
        "status": row["status"],
        "queued_at": row["queued_at"],
        "reason": row["reason"],
        "run_id": row["run_id"],
        "updated_at": row["updated_at"],
    }
