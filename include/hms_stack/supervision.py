"""Supervision: a component that exits is started again, after a pause that doubles while it keeps
exiting, and one that exits too often within a window (a crash loop) stops the stack.

The policy lives here: how often to look, how long to wait before a restart, the order of restarts
(none before those started earlier are back: the database first), when to give up, and what the
console and the component's own log say. The stack does the work it is asked for: end what a
dead component left, start it again, write stack.json.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hms_stack import processes, status
from hms_stack.console import CrashLoop
from hms_stack.postgres import POSTGRES

if TYPE_CHECKING:
    from hms_stack.stack import Stack

# How often the launcher looks, and the pause before the n-th restart in a row (1, 2, 4 … seconds,
# at most 30), so that a component that cannot start does not spin.
SUPERVISE_INTERVAL = 0.5
RESTART_BACKOFF_MAX = 30.0


class Supervisor:
    """The restarts of one stack's components: when each is due, how many there were, and the
    recent exits that make a crash loop (the stack's crash_loop_restarts within crash_loop_seconds)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.restarts: dict[str, int] = {}  # by component, since the start: `make status` shows them
        self._exits: dict[str, list[float]] = {}  # within the window
        self._restart_due: dict[str, float] = {}

    def supervise(self, log=print, *, until: Callable[[], str | None] = lambda: None) -> str:
        """Keep the stack running until interrupted or `until()` gives a reason (returned): a
        component that exits has its remaining processes ended and is started again after a
        pause; raises CrashLoop when one keeps exiting."""
        processes.become_subreaper()  # also done by the launcher before start: orphans come to us
        while not (reason := until()):
            self.supervise_once(log)
            time.sleep(SUPERVISE_INTERVAL)
        return reason

    def supervise_once(self, log=print) -> None:
        stack = self.stack
        processes.reap_orphans(keep=[proc.pid for proc in stack.processes.values()])
        for name in stack.supervised():
            if name not in self._restart_due and (how := self._ended(name)):
                self._note_exit(name, how, log)
        # In start order, and none before those started earlier are back: the database first.
        for name in stack.supervised():
            due = self._restart_due.get(name)
            if due is None:
                continue
            if due > time.monotonic():
                break
            try:
                self._restart_due.pop(name)
                stack.restart(name)
            except Exception as err:  # noqa: BLE001 (counted like an exit; a crash loop stops it)
                self._note_exit(name, f"could not be restarted ({err})", log)
                break
            log(f"restarted {name} (pid {stack.pid(name)})")
            _append_to_log(stack.log_file(name), f"restarted by the launcher (pid {stack.pid(name)})")
            status.write(stack)

    def _ended(self, name: str) -> str | None:
        """How a component ended, or None while it runs."""
        if name == POSTGRES:
            return self.stack.postgres.ended()
        returncode = self.stack.processes[name].poll()
        return None if returncode is None else processes.how_it_ended(returncode)

    def _note_exit(self, name: str, how: str, log) -> None:
        stack = self.stack
        now = time.monotonic()
        recent = [t for t in self._exits.get(name, []) if now - t < stack.crash_loop_seconds]
        if len(recent) >= stack.crash_loop_restarts:
            message = (f"{name} {how}: {len(recent) + 1} exits within {stack.crash_loop_seconds:.0f} s, a crash "
                       f"loop (at most {stack.crash_loop_restarts} restarts in that time); stopping the stack. "
                       f"Its log: {stack.log_file(name)}")
            _append_to_log(stack.log_file(name), message)
            raise CrashLoop(message)
        self._exits[name] = [*recent, now]
        self.restarts[name] = self.restarts.get(name, 0) + 1
        delay = min(2.0 ** len(recent), RESTART_BACKOFF_MAX)
        line = (f"{name} {how}; restarting it in {delay:.0f} s "
                f"(restart {len(recent) + 1} of at most {stack.crash_loop_restarts} within "
                f"{stack.crash_loop_seconds:.0f} s; log: {stack.log_file(name)})")
        log(line)
        _append_to_log(stack.log_file(name), line)
        # Its orphans (a scheduler's LocalExecutor workers, a Celery worker's pool) go first, so
        # that after the restart exactly one set of them exists.
        stack.end_processes({name: stack.find_processes().get(name, [])})
        self._restart_due[name] = time.monotonic() + delay
        status.write(stack)


def _append_to_log(log_file: Path, line: str) -> None:
    """A line of the launcher's in a component's own log, where whoever reads it looks."""
    with contextlib.suppress(OSError), open(log_file, "a") as out:
        out.write(f"--- hms_stack {datetime.now():%Y-%m-%d %H:%M:%S}: {line} ---\n")
