"""A real Bokeh server, started by the launcher, through its drain (launcher/replica.py).

Each test starts `serve.py` on a free loopback port with a key of its own, talks to it the way the
gateway does (signed session ids and tokens, Bokeh's WebSocket protocol) and counts sessions with
the replica's own status route, i.e. inside Bokeh.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from bokeh.util.token import generate_jwt_token, generate_session_id
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

SERVE = Path(__file__).resolve().parent.parent / "serve.py"
KEY = "replica-tests-key_0123456789abcdefghijklmnop"
PREFIX = "/bokeh"
APP = "ping"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Replica:
    """The launcher as a child process, and what the gateway would ask of it."""

    def __init__(self, drain_timeout_s: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}{PREFIX}"
        env = {
            **os.environ,
            "BOKEH_PORT": str(self.port),
            "BOKEH_SECRET_KEY": KEY,
            "BOKEH_DRAIN_TIMEOUT_S": str(drain_timeout_s),
            "PUBLIC_ORIGINS": f"http://127.0.0.1:{self.port}",
            "BOKEH_LOG_LEVEL": "warning",
        }
        self.process = subprocess.Popen([sys.executable, str(SERVE)], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not isinstance(self.status(), dict):
            if self.process.poll() is not None:
                raise RuntimeError(f"the launcher exited with {self.process.returncode}: {self.process.stderr.read()}")
            if time.monotonic() > deadline:
                raise RuntimeError("the launcher did not answer within 60 s")
            time.sleep(0.2)

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def status(self) -> dict | None:
        try:
            status, _headers, body = self.get("/_replica")
        except OSError:
            return None
        return json.loads(body) if status == 200 else None

    def autoload(self) -> tuple[int, dict[str, str], bytes]:
        session_id = generate_session_id(KEY, signed=True)
        return self.get(
            f"/{APP}/autoload.js?bokeh-autoload-element=x&bokeh-app-path={PREFIX}/{APP}"
            f"&bokeh-absolute-url=http://127.0.0.1:{self.port}{PREFIX}/{APP}&bokeh-session-id={session_id}"
        )

    async def connect(self, session_id: str | None = None) -> WebSocketClientConnection:
        """A session's WebSocket, open once Bokeh's ACK has arrived."""
        token = generate_jwt_token(session_id or generate_session_id(KEY, signed=True), secret_key=KEY, signed=True)
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.port}{PREFIX}/{APP}/ws", headers={"Origin": f"http://127.0.0.1:{self.port}"}
        )
        ws = await websocket_connect(request, subprotocols=["bokeh", token])
        header = json.loads(await ws.read_message())
        assert header["msgtype"] == "ACK"
        await ws.read_message()  # metadata
        await ws.read_message()  # content
        return ws

    def terminate(self) -> float:
        self.process.send_signal(signal.SIGTERM)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stderr.close()


async def round_trip(ws: WebSocketClientConnection) -> str:
    """PULL-DOC-REQ, answered with the document: the session is served."""
    for frame in ({"msgid": "1", "msgtype": "PULL-DOC-REQ"}, {}, {}):
        await ws.write_message(json.dumps(frame))
    header = json.loads(await asyncio.wait_for(ws.read_message(), 10))
    await ws.read_message()
    await ws.read_message()
    return header["msgtype"]


@pytest.fixture
def replica(request):
    started = Replica(getattr(request, "param", 30))
    yield started
    started.close()


def test_reports_serving_and_counts_sessions_inside_bokeh(replica):
    assert replica.status() == {
        "state": "serving",
        "sessions": 0,
        "connections": 0,
        "sessionsCreated": 0,
        "drainTimeoutSeconds": 30,
    }

    async def two_sessions():
        first, second = await replica.connect(), await replica.connect()
        counted = replica.status()
        first.close()
        second.close()
        return counted

    counted = asyncio.run(two_sessions())
    assert (counted["sessions"], counted["connections"], counted["sessionsCreated"]) == (2, 2, 2)


def test_a_drain_serves_held_sessions_refuses_new_ones_and_ends_when_they_are_done(replica):
    async def scenario():
        ws = await replica.connect()
        started = replica.terminate()
        await asyncio.sleep(1)
        status = replica.status()
        assert status["state"] == "draining"
        assert status["connections"] == 1
        # The held session is still served.
        assert await round_trip(ws) == "PULL-DOC-REPLY"
        # Anything that would start a session, and the metadata health checks read, is refused.
        for code, headers, body in (replica.autoload(), replica.get(f"/{APP}/metadata"), replica.get(f"/{APP}")):
            assert code == 503
            assert headers["Retry-After"] == "5"
            assert headers["Bokeh-Replica-State"] == "draining"
            assert json.loads(body)["error"] == "REPLICA_DRAINING"
        with pytest.raises(Exception, match="503"):
            await replica.connect()
        assert replica.status()["sessionsCreated"] == 1
        # Static files still load for the pages of held sessions.
        assert replica.get("/static/js/bokeh.min.js")[0] == 200
        assert replica.process.poll() is None
        ws.close()
        return started

    started = asyncio.run(scenario())
    # Done once the last session has been gone for the reconnect grace, long before the 30 s bound.
    assert replica.wait(timeout=15) == 0
    assert time.monotonic() - started < 12


@pytest.mark.parametrize("replica", [3], indirect=True)
def test_a_drain_ends_at_its_timeout_and_closes_what_is_left(replica):
    async def scenario():
        ws = await replica.connect()
        started = replica.terminate()
        assert replica.wait(timeout=15) == 0
        elapsed = time.monotonic() - started
        closed = await asyncio.wait_for(ws.read_message(), 5)
        return elapsed, closed

    elapsed, closed = asyncio.run(scenario())
    assert 2.5 < elapsed < 8
    assert closed is None


def test_a_second_sigterm_stops_at_once(replica):
    async def scenario():
        ws = await replica.connect()
        replica.terminate()
        await asyncio.sleep(0.5)
        started = replica.terminate()
        assert replica.wait(timeout=10) == 0
        ws.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 3


@pytest.mark.parametrize("replica", [0], indirect=True)
def test_no_drain_with_a_zero_timeout(replica):
    async def scenario():
        ws = await replica.connect()
        started = replica.terminate()
        assert replica.wait(timeout=10) == 0
        ws.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 3
