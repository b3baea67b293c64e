"""The state folder's lock: one stack at a time runs from a folder, and who runs it.

`<state>/stack.lock` is held (flock) by the process that runs the folder's stack for as long as it
runs: `make run`'s launcher, or a test's or a benchmark's process. The kernel drops it when that
process ends, however it ends, so it never goes stale the way a pid file does, and a second start
is refused before it touches anything. What the holder wrote into the file says who it is, for
the messages and for `make stop`, which asks a launcher to stop its own stack first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from hms_stack import processes
from hms_stack.console import AlreadyRunning


class StateLock:
    """`<state>/stack.lock`, held (flock) by the process that runs the folder's stack for as long
    as it runs. The kernel drops it when that process ends, however it ends, so it is never stale
    the way a pid file is; the file's content says who holds it, for the messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, info: dict[str, Any]) -> None:
        if not self.try_acquire(info):
            holder = self.holder() or {}
            since = datetime.fromtimestamp(holder["since"]).strftime("%Y-%m-%d %H:%M:%S") \
                if isinstance(holder.get("since"), int | float) else "a while"
            by = "" if holder.get("launcher") else f" (by pid {holder.get('pid', '?')}, not `make run`)"
            raise AlreadyRunning(f"a stack is already running from {self.path.parent} since {since}{by}, "
                                 f"UI at {holder.get('api_url', '?')}; `make stop` first")

    def try_acquire(self, info: dict[str, Any]) -> bool:
        if self._fd is not None:
            return True
        if not self.path.parent.is_dir():
            return False
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the lock; the file stays, empty of meaning
            self._fd = None

    def holder(self) -> dict[str, Any] | None:
        """What the holder wrote ({"pid", "since", "launcher", "api_url", …}), None when free."""
        pid = self._holder_pid()
        if pid is None:
            return None
        try:
            info = json.loads(self.path.read_text())
        except (OSError, ValueError):
            info = {}
        return info if isinstance(info, dict) and info.get("pid") == pid else {"pid": pid}

    def _holder_pid(self) -> int | None:
        """The pid holding the lock, from the kernel's lock table (a test-lock would itself, for a
        moment, make another start fail)."""
        try:
            inode = self.path.stat().st_ino
            table = Path("/proc/locks").read_text().splitlines()
        except OSError:
            return None
        for line in table:
            fields = line.split()
            # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2206879 0 EOF" (blocked waiters have "->")
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
                pid = int(fields[4])
                if self._has_open(pid):
                    return pid
        return None

    def _has_open(self, pid: int) -> bool:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == str(self.path):
                        return True
        return False


def is_launcher(holder: dict[str, Any]) -> bool:
    """Whether the lock's holder is `python -m hms_stack run` (it stops its own stack when told),
    as it wrote, or, if what it wrote is lost, as its command line says."""
    if "launcher" in holder:
        return bool(holder["launcher"])
    try:
        command = processes.live(holder["pid"]).cmdline()
    except Exception:  # noqa: BLE001 (gone, or not ours to read)
        return False
    return "hms_stack" in command and "run" in command
