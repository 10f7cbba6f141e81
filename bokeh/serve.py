"""Run `bokeh serve` for every app folder under apps/, configured from the environment.

Settings (an empty value counts as unset):

  BOKEH_PORT             port to listen on, on all interfaces (default 5006)
  BOKEH_PREFIX           URL path the apps live under, shared with the gateway (default /bokeh)
  PUBLIC_ORIGINS         comma-separated origins users load pages from; becomes --allow-websocket-origin
                         (default: http://localhost and http://127.0.0.1 on GATEWAY_PORT, and
                         https://localhost and https://127.0.0.1 on NGINX_HTTPS_PORT and APACHE_HTTPS_PORT)
  GATEWAY_PORT           host port of the gateway (bare-dev layout), for the default origins (default 8000)
  NGINX_HTTPS_PORT       host port of NGINX's HTTPS (nginx layout), for the default origins (default 8443)
  APACHE_HTTPS_PORT      host port of Apache's HTTPS (apache layout), for the default origins (default 8444)
  BOKEH_ALLOW_WS_ORIGIN  Bokeh's own host[:port] list; when set it replaces PUBLIC_ORIGINS
  BOKEH_NODELAY          true/false (default true): TCP_NODELAY on Bokeh's WebSockets
  BOKEH_LOG_LEVEL        trace, debug, info, warning, error or critical (default info)
  BOKEH_SECRET_KEY       key that signs session ids and tokens (required, at least 32 characters);
                         Bokeh then runs with --session-ids external-signed, so only holders of the
                         key (the gateway) can start sessions
  BOKEH_SECRET_KEY_FILE  file holding the key, read when BOKEH_SECRET_KEY is not set
  BOKEH_DRAIN_TIMEOUT_S  seconds (default 20, 0 to 3600): on SIGTERM, keep serving open sessions this long
                         at most while refusing new ones (launcher/replica.py); keep it under the
                         container's stop grace period
  BOKEH_DEV              true/false (default false): restart Bokeh whenever a file under apps/ changes,
                         so a new session runs the edited app (dev mode, compose.dev.yml)

Arguments given to this script are appended to `bokeh serve`, e.g. `--num-procs 2`.
If the first argument is not an option it is run as a command instead (a shell, the tests).
A bad setting stops the launcher with exit status 2 and a one-line message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from launcher.apps import APPS_DIR, find_apps
from launcher.argv import build_argv, describe
from launcher.devmode import run_dev
from launcher.nodelay import install_nodelay
from launcher.replica import install_replica
from launcher.settings import ConfigError, load_config


def main(args: Sequence[str] | None = None) -> None:
    extra = list(sys.argv[1:] if args is None else args)
    if extra and not extra[0].startswith("-"):
        os.execvp(extra[0], extra)

    try:
        config = load_config(os.environ)
    except ConfigError as error:
        print(f"serve: {error}", file=sys.stderr)
        sys.exit(2)
    apps = find_apps()
    if not apps:
        print(
            f"serve: no apps in {APPS_DIR} (each app is a folder with a main.py); mount your app folders there",
            file=sys.stderr,
        )
        sys.exit(2)

    for name, value in config.env_updates.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    print(describe(config, apps, extra), file=sys.stderr, flush=True)
    if config.dev:
        run_dev([sys.executable, str(Path(__file__).resolve()), *extra])
        return
    if config.nodelay:
        install_nodelay()
    install_replica(config.drain_timeout_s)

    from bokeh.command.bootstrap import main as bokeh_main

    bokeh_main(build_argv(config, apps, extra))


if __name__ == "__main__":
    main()
