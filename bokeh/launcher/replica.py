"""One Bokeh replica's life cycle as the gateway sees it: serving, then draining, then gone.

Bokeh keeps every session in the memory of the one process that made it, and on SIGTERM it stops
at once, cutting every open session. `install_replica()` changes that, before the server starts:

- SIGTERM starts a drain. The replica refuses what would start a new session (an app page,
  autoload.js, a WebSocket for a session it does not hold) and its per-app metadata with 503, so
  the gateway's health checks see the drain, and keeps serving the sessions it holds. It stops
  when none is left, or after the drain timeout, whichever comes first. A second SIGTERM stops it
  at once.
- `<prefix>/_replica` answers with the replica's state and its session counts, counted by Bokeh
  itself: what the gateway uses to tell a draining replica from a dead one, and what the tests
  count sessions with. No app can have that name (app names start with a letter or digit), and
  the gateway never lets a browser reach it.
"""

from __future__ import annotations

import json
import sys
import time

#: Where the replica reports its state, below Bokeh's prefix.
STATUS_PATH = "/_replica"
#: Set on every answer refused during a drain, so a proxy can tell a drain from a failure.
STATE_HEADER = "Bokeh-Replica-State"
#: A session with no WebSocket is still waited for this long after it was made or last left: its
#: page may be about to connect, or BokehJS (3.8+) about to reconnect after a network blip.
RECONNECT_GRACE_MS = 5_000
#: How often a draining replica looks whether its sessions are gone.
CHECK_INTERVAL_MS = 250
#: What a refused request is told to wait before trying again (the gateway tries another replica).
RETRY_AFTER_S = 5


class _State:
    """The one replica this process runs."""

    def __init__(self) -> None:
        self.drain_timeout_s = 0.0
        self.draining_since: float | None = None
        self.sessions_created = 0

    @property
    def draining(self) -> bool:
        return self.draining_since is not None


STATE = _State()


def _log(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)


def _held_sessions(tornado_app) -> list:
    return [session for path in tornado_app.app_paths for session in tornado_app.get_sessions(path)]


def _busy(session) -> bool:
    """Whether a draining replica still owes this session its service."""
    return session.connection_count > 0 or session.milliseconds_since_last_unsubscribe < RECONNECT_GRACE_MS


def status(tornado_app) -> dict:
    """The replica's state and what it holds, as `<prefix>/_replica` reports it."""
    sessions = _held_sessions(tornado_app)
    return {
        "state": "draining" if STATE.draining else "serving",
        "sessions": len(sessions),
        "connections": sum(session.connection_count for session in sessions),
        "sessionsCreated": STATE.sessions_created,
        "drainTimeoutSeconds": STATE.drain_timeout_s,
        **(
            {"drainingForSeconds": round(time.monotonic() - STATE.draining_since, 3)}
            if STATE.draining_since is not None
            else {}
        ),
    }


def _session_id_of_upgrade(handler) -> str | None:
    """The session a WebSocket upgrade asks for: Bokeh's token is its second subprotocol."""
    from bokeh.util.token import get_session_id

    offered = [item.strip() for item in handler.request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(offered) != 2:
        return None
    try:
        return get_session_id(offered[1])
    except (ValueError, KeyError, TypeError):  # a malformed token: Bokeh itself refuses it later
        return None


def _refused_while_draining(handler) -> bool:
    """During a drain, only WebSockets of sessions this replica holds get through."""
    from bokeh.server.views.ws import WSHandler

    if not isinstance(handler, WSHandler):
        return True
    session_id = _session_id_of_upgrade(handler)
    return not any(session.id == session_id for session in handler.application_context.sessions)


def install_replica(drain_timeout_s: float) -> None:
    """Patch Bokeh's server for draining and the status route; call before Bokeh starts."""
    from bokeh.server.server import BaseServer
    from bokeh.server.session import ServerSession
    from bokeh.server.urls import toplevel_patterns
    from bokeh.server.views.auth_request_handler import AuthRequestHandler
    from tornado.ioloop import PeriodicCallback
    from tornado.web import RequestHandler

    STATE.drain_timeout_s = drain_timeout_s
    if getattr(BaseServer, "_drains", False):
        return
    BaseServer._drains = True  # type: ignore[attr-defined]

    original_session_init = ServerSession.__init__

    def counted_session_init(self, *args, **kwargs):
        original_session_init(self, *args, **kwargs)
        STATE.sessions_created += 1

    ServerSession.__init__ = counted_session_init  # type: ignore[method-assign]

    original_prepare = AuthRequestHandler.prepare

    async def prepare(self):
        if STATE.draining and _refused_while_draining(self):
            self.set_status(503)
            self.set_header("Retry-After", str(RETRY_AFTER_S))
            self.set_header("Cache-Control", "no-store")
            self.set_header(STATE_HEADER, "draining")
            self.set_header("Content-Type", "application/json")
            self.finish(
                json.dumps(
                    {
                        "error": "REPLICA_DRAINING",
                        "message": "This Bokeh replica is shutting down and starts no new sessions; try again.",
                    }
                )
            )
            return
        await original_prepare(self)

    AuthRequestHandler.prepare = prepare  # type: ignore[method-assign]

    class ReplicaStatusHandler(RequestHandler):
        def get(self) -> None:
            self.set_header("Cache-Control", "no-store")
            self.set_header(STATE_HEADER, "draining" if STATE.draining else "serving")
            self.write(status(self.application))

    toplevel_patterns.insert(0, (STATUS_PATH, ReplicaStatusHandler))

    def sigterm(self) -> None:
        if STATE.draining_since is not None:
            _log("second SIGTERM: stopping now")
            self._loop.stop()
            return
        STATE.draining_since = time.monotonic()
        held = _held_sessions(self._tornado)
        if STATE.drain_timeout_s <= 0:
            _log(f"SIGTERM: stopping now (BOKEH_DRAIN_TIMEOUT_S=0), {len(held)} sessions closed")
            self._loop.stop()
            return
        _log(
            f"SIGTERM: draining; {len(held)} sessions held, no new ones; stopping when they are done "
            f"or after {STATE.drain_timeout_s:g} s (BOKEH_DRAIN_TIMEOUT_S)"
        )

        def check() -> None:
            elapsed = time.monotonic() - STATE.draining_since
            busy = [session for session in _held_sessions(self._tornado) if _busy(session)]
            if busy and elapsed < STATE.drain_timeout_s:
                return
            checker.stop()
            if busy:
                _log(f"drain timeout after {elapsed:.1f} s: closing {len(busy)} sessions")
            else:
                _log(f"drained in {elapsed:.1f} s: stopping")
            self._loop.stop()

        checker = PeriodicCallback(check, CHECK_INTERVAL_MS)
        checker.start()

    BaseServer._sigterm = sigterm  # type: ignore[method-assign]
