"""Run Bokeh and the gateway in one container, and stop them together.

PaaS hosts start one process and send it SIGTERM to stop. This starts Bokeh (bokeh/serve.py)
on 127.0.0.1:5006 and the gateway on $PORT pointed at it, passes SIGTERM and SIGINT on to both,
and exits as soon as either one exits, stopping the other, so the platform restarts the pair.
Every other setting is read by the two programs themselves (see .env.example).

The gateway's port is also the one published, so unless GATEWAY_PORT is set it is $PORT: the
default PUBLIC_ORIGINS (http://localhost:$PORT, http://127.0.0.1:$PORT) then match a local
`docker run -p PORT:PORT`. A platform's public address still goes in PUBLIC_ORIGINS.

Both ends of a signed session live in this container, so when neither BOKEH_SECRET_KEY nor
BOKEH_SECRET_KEY_FILE is set, a random key is made for this container's lifetime. Sessions do
not outlive the container anyway; set BOKEH_SECRET_KEY to share the key with other services.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

BOKEH_PORT = "5006"
# Longer than the gateway's default SHUTDOWN_TIMEOUT_MS, so it can drain first.
STOP_GRACE_SECONDS = 15


def log(message: str) -> None:
    print(f"run: {message}", file=sys.stderr, flush=True)


def main() -> int:
    env = dict(os.environ)
    env.setdefault("BOKEH_URL", f"http://127.0.0.1:{BOKEH_PORT}")
    env["BOKEH_PORT"] = BOKEH_PORT
    port = env.get("PORT", "").strip()
    # Only a valid port: a bad PORT is reported by the gateway under its own name.
    if not env.get("GATEWAY_PORT", "").strip() and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535:
        env["GATEWAY_PORT"] = port
    if not env.get("BOKEH_SECRET_KEY", "").strip() and not env.get("BOKEH_SECRET_KEY_FILE", "").strip():
        env["BOKEH_SECRET_KEY"] = secrets.token_urlsafe(48)
        log("no BOKEH_SECRET_KEY set: signing sessions with a random key made for this container")
    # Bokeh is reachable only through the gateway: bind it to loopback (the last --address wins).
    bokeh = subprocess.Popen([sys.executable, "/app/serve.py", "--address", "127.0.0.1"], env=env)
    gateway = subprocess.Popen(["node", "--max-semi-space-size=1", "/gateway/dist/main.js"], env=env, cwd="/gateway")
    children = {"bokeh": bokeh, "gateway": gateway}
    log(f"started bokeh (pid {bokeh.pid}) and gateway (pid {gateway.pid}) on port {env.get('PORT', '8000')}")

    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    while all(child.poll() is None for child in children.values()):
        time.sleep(0.2)

    first = next(name for name, child in children.items() if child.poll() is not None)
    code = children[first].returncode
    if not stopping:
        log(f"{first} exited with status {code}; stopping the other")
        stop(signal.SIGTERM, None)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children.values():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if stopping:
        log("stopped")
        return 0 if all(child.returncode in (0, -signal.SIGTERM, -signal.SIGINT) for child in children.values()) else 1
    return code or 1


if __name__ == "__main__":
    sys.exit(main())
