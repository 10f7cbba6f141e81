"""The apps folder: every directory-format Bokeh app the launcher serves."""

from __future__ import annotations

from pathlib import Path

APPS_DIR = Path(__file__).resolve().parent.parent / "apps"


def find_apps(apps_dir: Path = APPS_DIR) -> list[Path]:
    """App folders (directory-format Bokeh apps), sorted by name."""
    if not apps_dir.is_dir():
        return []
    return sorted(
        p
        for p in apps_dir.iterdir()
        if p.is_dir()
        and not p.name.startswith((".", "_"))
        and ((p / "main.py").is_file() or (p / "main.ipynb").is_file())
    )
