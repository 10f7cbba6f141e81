"""Dev mode: restart Bokeh whenever a file under the apps folder changes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from launcher.apps import APPS_DIR

# How often dev mode looks for changed app files. Polling, not inotify: file events do not cross
# every bind mount (Docker Desktop's file sharing, network file systems), and half a second is quick
# next to Bokeh's own start-up.
DEV_POLL_SECONDS = 0.5


def app_files(apps_dir: Path = APPS_DIR) -> dict[Path, int]:
    """Every file under the apps folder with its modification time, to notice edits, new and deleted files."""
    files: dict[Path, int] = {}
    for path in apps_dir.rglob("*"):
        if "__pycache__" in path.parts or path.name.startswith("."):
            continue
        try:
            if path.is_file():
                files[path] = path.stat().st_mtime_ns
        except OSError:
            continue  # deleted while we looked
    return files


def run_dev(command: Sequence[str]) -> None:
    """Dev mode: run `command` (the launcher itself, with dev mode off) as a child process and start
    it again whenever an app file changes.

    Bokeh's own --dev reloads a single app only, and Bokeh reads an app's code once at start, so
    the launcher watches the whole apps folder and restarts the server: the next session runs the
    edited code. Sessions open at the restart are closed, as with Bokeh's --dev.
    """
    child: subprocess.Popen[bytes] | None = None

    def start() -> subprocess.Popen[bytes]:
        # No drain: an edit restarts Bokeh at once, closing open sessions as Bokeh's --dev does.
        return subprocess.Popen(list(command), env={**os.environ, "BOKEH_DEV": "false", "BOKEH_DRAIN_TIMEOUT_S": "0"})

    def stop(signum: int, _frame: object) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signum)
            child.wait()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    seen = app_files()
    child = start()
    while True:
        time.sleep(DEV_POLL_SECONDS)
        current = app_files()
        if current == seen:
            continue
        changed = sorted(
            str(p.relative_to(APPS_DIR))
            for p in set(current) ^ set(seen) | {p for p in current if p in seen and current[p] != seen[p]}
        )
        print(f"serve: dev mode: {', '.join(changed)} changed; restarting Bokeh", file=sys.stderr, flush=True)
        seen = current
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child = start()
