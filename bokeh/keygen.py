"""Write a random BOKEH_SECRET_KEY to a file, once per deployment.

    python3 /app/keygen.py /run/stack-secret/bokeh-secret-key

The compose file runs this before Bokeh and the gateway start, and both read the file through
BOKEH_SECRET_KEY_FILE, so `docker compose up` works without a key in .env while no image ever
carries one. An existing key is kept, so sessions survive restarts; delete the volume to rotate.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from launcher.settings import ConfigError, check_secret_key


def ensure_key(path: Path) -> bool:
    """Create the key file unless a usable one exists; True when a new key was written."""
    if path.exists():
        check_secret_key(f"the key in {path}", path.read_text(encoding="utf-8").strip())
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a reader never sees half a key; 0400 keeps it to this user.
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
    os.replace(partial, path)
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("keygen: usage: keygen.py PATH", file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        created = ensure_key(path)
    except ConfigError as error:
        print(f"keygen: {error}; delete {path} to have a new key made", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"keygen: cannot write {path} ({error.strerror}); mount a writable volume there", file=sys.stderr)
        return 2
    print(f"keygen: {'wrote a new' if created else 'kept the existing'} session signing key in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
