"""The `bokeh serve` command line, and the start-up log line that describes it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from launcher.settings import Config


def build_argv(config: Config, apps: Sequence[Path], extra_args: Sequence[str] = ()) -> list[str]:
    """The `bokeh serve` command line; extra arguments come last so they can override ours."""
    argv = [
        "bokeh",
        "serve",
        *(str(app) for app in apps),
        "--port",
        str(config.port),
        "--address",
        "0.0.0.0",
        # Bokeh sits behind the gateway: take client address and scheme from X-Forwarded-*.
        "--use-xheaders",
        # Sessions start only with an id or token signed with BOKEH_SECRET_KEY, which the
        # gateway mints; a request that reaches Bokeh some other way gets 403.
        "--session-ids",
        "external-signed",
        "--log-level",
        config.log_level,
    ]
    if config.prefix:
        argv += ["--prefix", config.prefix]
    for host in config.ws_origin_args:
        argv += ["--allow-websocket-origin", host]
    argv += list(extra_args)
    return argv


def describe(config: Config, apps: Sequence[Path], extra_args: Sequence[str] = ()) -> str:
    """One log line with the effective settings. Only option names of extra arguments are
    shown, since their values could be secrets."""
    options = [a.split("=", 1)[0] for a in extra_args if a.startswith("-")]
    return (
        f"serve: port={config.port} prefix={config.prefix or '(none)'} "
        f"apps={','.join(a.name for a in apps)} "
        f"ws_origins={','.join(config.ws_origins)} (from {config.ws_origins_from}) "
        f"nodelay={'on' if config.nodelay else 'off'} log_level={config.log_level} "
        f"sessions=external-signed (key from {config.secret_key_from})"
        + f" drain={config.drain_timeout_s}s"
        + (" dev=on" if config.dev else "")
        + (f" extra={','.join(options)}" if options else "")
    )
