"""The launcher's settings: read once from the environment, checked, and turned into a Config.

Every rule about a setting's value lives here; healthcheck.py and keygen.py use these rules too.
A bad value raises ConfigError with the one line shown to the user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORT = 5006
DEFAULT_PREFIX = "/bokeh"
# The host ports of the two layouts (compose's GATEWAY_PORT and NGINX_HTTPS_PORT). Unless
# PUBLIC_ORIGINS is set, the origins are localhost and 127.0.0.1 on these ports, so changing a
# port alone keeps pages and WebSockets working.
DEFAULT_GATEWAY_PORT = 8000
DEFAULT_NGINX_HTTPS_PORT = 8443
DEFAULT_APACHE_HTTPS_PORT = 8444
LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical")
# On SIGTERM a replica keeps serving its open sessions this long at most (launcher/replica.py).
# Under compose's stop_grace_period for the bokeh service (25 s), so Docker never kills a drain.
DEFAULT_DRAIN_TIMEOUT_S = 20
MAX_DRAIN_TIMEOUT_S = 3600
DEFAULT_PORTS = {"http": 80, "https": 443}
# HMAC-SHA256 wants a key at least as long as its 32-byte output; Bokeh's own generator makes 44.
MIN_SECRET_KEY_CHARS = 32
KEY_HOWTO = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

# Bokeh pastes the prefix into its route regular expressions, so keep it to plain path characters;
# a segment may not start with "." (no ".", "..", or hidden names). The gateway and NGINX's
# entrypoint apply the same rule (tests/rules/cases.json).
PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*", re.ASCII)
# ASCII digits only: str.isdigit() also takes digits of other scripts and superscripts.
DIGITS = re.compile(r"[0-9]+", re.ASCII)
HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?")


class ConfigError(Exception):
    """A setting with a bad value; the message is the single line shown to the user."""


def _bad(name: str, value: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f'{name} {problem} (got "{value}"); {fix}')


@dataclass(frozen=True)
class Config:
    port: int = DEFAULT_PORT
    prefix: str = DEFAULT_PREFIX
    # host[:port] entries for --allow-websocket-origin; empty when BOKEH_ALLOW_WS_ORIGIN is used.
    ws_origin_args: tuple[str, ...] = ()
    # What Bokeh will accept, for the start-up log line.
    ws_origins: tuple[str, ...] = ()
    ws_origins_from: str = "PUBLIC_ORIGINS"
    nodelay: bool = True
    log_level: str = "info"
    secret_key_from: str = "BOKEH_SECRET_KEY"
    dev: bool = False
    drain_timeout_s: int = DEFAULT_DRAIN_TIMEOUT_S
    # Environment changes to make before Bokeh reads its own settings (None removes the variable).
    env_updates: Mapping[str, str | None] = field(default_factory=dict)


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def parse_port(value: str | None, name: str = "BOKEH_PORT", default: int = DEFAULT_PORT) -> int:
    if value is None:
        return default
    if not DIGITS.fullmatch(value) or not 1 <= int(value) <= 65535:
        raise _bad(name, value, "must be a whole number from 1 to 65535", f"set {name}={default}")
    return int(value)


def parse_prefix(value: str | None) -> str:
    if value is None:
        return DEFAULT_PREFIX
    segments = [s for s in value.split("/") if s]
    suggestion = "/" + "/".join(segments) if segments else DEFAULT_PREFIX
    fix = f"set BOKEH_PREFIX={suggestion}"
    if not value.startswith("/"):
        raise _bad("BOKEH_PREFIX", value, 'must start with "/"', fix)
    if value.endswith("/"):
        raise _bad("BOKEH_PREFIX", value, 'must not end with "/"', fix)
    parts = value[1:].split("/")
    if any(part in ("", ".", "..") or not PREFIX_SEGMENT.fullmatch(part) for part in parts):
        raise _bad(
            "BOKEH_PREFIX",
            value,
            "must be a plain URL path of letters, digits and - _ . ~ between single slashes",
            f"set BOKEH_PREFIX={DEFAULT_PREFIX}",
        )
    return value


def origin_to_ws_host(origin: str) -> str:
    """Turn a public origin into the host[:port] entry that lets that page's WebSocket in.

    Bokeh compares the netloc of the browser's Origin header. Browsers leave the port out of
    Origin when it is the scheme's default, and Bokeh then treats the host as host:80; a bare
    host in --allow-websocket-origin also becomes host:80. So a default port (80 for http,
    443 for https) must be left out here, and any other port kept.
    """
    name = "PUBLIC_ORIGINS"
    if "://" not in origin:
        raise _bad(
            name, origin, "entries must look like scheme://host[:port]", f"set {name}=http://{origin.strip('/')}"
        )
    scheme_part, rest = origin.split("://", 1)
    scheme = scheme_part.lower()
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if scheme not in DEFAULT_PORTS:
        guess = "https" if scheme == "wss" else "http"
        raise _bad(name, origin, "entries must use http or https", f"set {name}={guess}://{netloc}")
    parts = urlsplit(f"{scheme}://{rest}")
    if parts.path or parts.query or parts.fragment or origin.endswith(("?", "#")):
        raise _bad(
            name, origin, "entries must have no path, query or fragment", f"set {name}={scheme}://{parts.netloc}"
        )
    if "@" in parts.netloc:
        raise _bad(
            name,
            origin,
            "entries must not contain user info",
            f"set {name}={scheme}://{parts.netloc.rsplit('@', 1)[1]}",
        )
    if parts.netloc.startswith("["):
        raise _bad(
            name,
            origin,
            "cannot hold IPv6 addresses; Bokeh's origin list does not take them",
            f"set BOKEH_ALLOW_WS_ORIGIN={parts.netloc} instead",
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = parts.hostname or ""
    if port in (-1, 0) or parts.netloc.endswith(":"):
        raise _bad(name, origin, "entries need a port from 1 to 65535 after the host", f"set {name}={scheme}://{host}")
    if not HOST_NAME.fullmatch(host):
        if "*" in host:
            fix = "list each origin, or set BOKEH_ALLOW_WS_ORIGIN for wildcard patterns"
        else:
            try:
                ascii_host = host.encode("idna").decode("ascii")
            except UnicodeError:
                ascii_host = ""
            if ascii_host != host and HOST_NAME.fullmatch(ascii_host):
                fix = f"set {name}={scheme}://{ascii_host}"
            else:
                fix = f"set {name}=http://localhost:8000"
        raise _bad(name, origin, "entries need a plain ASCII host name or IPv4 address", fix)
    host = host.rstrip(".")
    if port is None or port == DEFAULT_PORTS[scheme]:
        return host
    return f"{host}:{port}"


def _origin(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{host}" if port == DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{port}"


def public_origins(environ: Mapping[str, str]) -> tuple[str, ...]:
    """PUBLIC_ORIGINS as given, else localhost and 127.0.0.1 on GATEWAY_PORT (http), then on
    NGINX_HTTPS_PORT and APACHE_HTTPS_PORT (https). All three ports are checked even when
    PUBLIC_ORIGINS is set."""
    gateway_port = parse_port(_get(environ, "GATEWAY_PORT"), "GATEWAY_PORT", DEFAULT_GATEWAY_PORT)
    nginx_port = parse_port(_get(environ, "NGINX_HTTPS_PORT"), "NGINX_HTTPS_PORT", DEFAULT_NGINX_HTTPS_PORT)
    apache_port = parse_port(_get(environ, "APACHE_HTTPS_PORT"), "APACHE_HTTPS_PORT", DEFAULT_APACHE_HTTPS_PORT)
    given = _get(environ, "PUBLIC_ORIGINS")
    if given is not None:
        return tuple(e.strip() for e in given.split(",") if e.strip())
    return tuple(
        _origin(scheme, host, port)
        for scheme, port in (("http", gateway_port), ("https", nginx_port), ("https", apache_port))
        for host in ("localhost", "127.0.0.1")
    )


def parse_public_origins(entries: Sequence[str]) -> tuple[str, ...]:
    hosts: list[str] = []
    for entry in entries:
        host = origin_to_ws_host(entry)
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts)


def parse_allow_ws_origin(value: str) -> tuple[str, ...]:
    entries = [e.strip() for e in value.split(",") if e.strip()]
    for entry in entries:
        if "/" in entry:
            try:
                fix = f"set BOKEH_ALLOW_WS_ORIGIN={origin_to_ws_host(entry.rstrip('/'))}"
            except ConfigError:
                fix = "set BOKEH_ALLOW_WS_ORIGIN=localhost:8000"
            raise _bad("BOKEH_ALLOW_WS_ORIGIN", entry, "entries are host[:port], not URLs", fix)
    if not entries:
        raise _bad(
            "BOKEH_ALLOW_WS_ORIGIN",
            value,
            "must list at least one host[:port]",
            "set BOKEH_ALLOW_WS_ORIGIN=localhost:8000",
        )
    return tuple(entries)


def parse_drain_timeout(value: str | None) -> int:
    if value is None:
        return DEFAULT_DRAIN_TIMEOUT_S
    if not DIGITS.fullmatch(value) or int(value) > MAX_DRAIN_TIMEOUT_S:
        raise _bad(
            "BOKEH_DRAIN_TIMEOUT_S",
            value,
            f"must be a whole number of seconds from 0 to {MAX_DRAIN_TIMEOUT_S}",
            f"set BOKEH_DRAIN_TIMEOUT_S={DEFAULT_DRAIN_TIMEOUT_S}, below the container's stop grace period",
        )
    return int(value)


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _bad(name, value, "must be true or false", f"set {name}={'true' if default else 'false'}")


def parse_log_level(value: str | None) -> str:
    if value is None:
        return "info"
    level = value.lower()
    if level not in LOG_LEVELS:
        raise _bad("BOKEH_LOG_LEVEL", value, f"must be one of {', '.join(LOG_LEVELS)}", "set BOKEH_LOG_LEVEL=info")
    return level


def check_secret_key(name: str, key: str) -> str:
    """Refuse keys that are short or obviously not random; the message never shows the key."""
    if len(key) < MIN_SECRET_KEY_CHARS:
        raise ConfigError(
            f"{name} is too short ({len(key)} characters, need at least {MIN_SECRET_KEY_CHARS}); {KEY_HOWTO}"
        )
    if len(set(key)) < 8:
        raise ConfigError(f"{name} is not random enough (it repeats {len(set(key))} characters); {KEY_HOWTO}")
    return key


def load_secret_key(environ: Mapping[str, str]) -> tuple[str, str]:
    """The key that signs sessions, and where it came from."""
    key = _get(environ, "BOKEH_SECRET_KEY")
    if key is not None:
        return check_secret_key("BOKEH_SECRET_KEY", key), "BOKEH_SECRET_KEY"
    path = _get(environ, "BOKEH_SECRET_KEY_FILE")
    if path is None:
        raise ConfigError(
            "BOKEH_SECRET_KEY is not set; Bokeh only serves sessions signed with a "
            "secret key. Set BOKEH_SECRET_KEY (the same value the gateway gets) or "
            f"BOKEH_SECRET_KEY_FILE; {KEY_HOWTO}"
        )
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(
            f"BOKEH_SECRET_KEY_FILE={path} cannot be read ({error.strerror}); "
            "point it at a readable file holding the key, or set BOKEH_SECRET_KEY"
        ) from None
    return check_secret_key(f"the key in BOKEH_SECRET_KEY_FILE={path}", key), f"BOKEH_SECRET_KEY_FILE={path}"


def load_config(environ: Mapping[str, str]) -> Config:
    """Read and check every setting; raises ConfigError on the first bad one."""
    port = parse_port(_get(environ, "BOKEH_PORT"))
    prefix = parse_prefix(_get(environ, "BOKEH_PREFIX"))
    nodelay = parse_bool("BOKEH_NODELAY", _get(environ, "BOKEH_NODELAY"), True)
    log_level = parse_log_level(_get(environ, "BOKEH_LOG_LEVEL"))
    secret_key, secret_key_from = load_secret_key(environ)
    dev = parse_bool("BOKEH_DEV", _get(environ, "BOKEH_DEV"), False)
    drain_timeout_s = parse_drain_timeout(_get(environ, "BOKEH_DRAIN_TIMEOUT_S"))
    origins = public_origins(environ)

    # Bokeh reads the key and the signing switch from its own environment variables.
    # BOKEH_LOG_LEVEL is removed: Bokeh reads it too, with other names ("warn", not "warning"),
    # and crashes on ours; the level reaches it as --log-level instead.
    env_updates: dict[str, str | None] = {
        "BOKEH_SECRET_KEY": secret_key,
        "BOKEH_SIGN_SESSIONS": "true",
        "BOKEH_LOG_LEVEL": None,
    }
    override = _get(environ, "BOKEH_ALLOW_WS_ORIGIN")
    if override is not None:
        # Bokeh reads this variable itself and does not trim spaces; hand it a clean list.
        entries = parse_allow_ws_origin(override)
        env_updates["BOKEH_ALLOW_WS_ORIGIN"] = ",".join(entries)
        ws_origin_args, ws_origins, ws_origins_from = (), entries, "BOKEH_ALLOW_WS_ORIGIN"
    else:
        if "BOKEH_ALLOW_WS_ORIGIN" in environ:
            # Set but blank (a common compose pass-through): Bokeh would take it as a list
            # holding one empty host and refuse every browser.
            env_updates["BOKEH_ALLOW_WS_ORIGIN"] = None
        hosts = parse_public_origins(origins)
        ws_origin_args, ws_origins, ws_origins_from = hosts, hosts, "PUBLIC_ORIGINS"
    return Config(
        port=port,
        prefix=prefix,
        ws_origin_args=ws_origin_args,
        ws_origins=ws_origins,
        ws_origins_from=ws_origins_from,
        nodelay=nodelay,
        log_level=log_level,
        secret_key_from=secret_key_from,
        dev=dev,
        drain_timeout_s=drain_timeout_s,
        env_updates=env_updates,
    )
