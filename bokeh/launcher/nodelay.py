"""TCP_NODELAY for Bokeh's WebSockets, patched into Bokeh's handler before the server starts."""

from __future__ import annotations

import functools


def install_nodelay() -> None:
    """Give every Bokeh WebSocket TCP_NODELAY.

    Bokeh sends each protocol message as several WebSocket frames, and Tornado leaves Nagle's
    algorithm on for WebSockets, so the later frames of a small reply wait for the peer's
    delayed ACK: about 40 ms per round trip instead of about 1 ms.
    """
    from bokeh.server.views.ws import WSHandler

    original_open = WSHandler.open
    if getattr(original_open, "_sets_nodelay", False):
        return

    @functools.wraps(original_open)
    def open_with_nodelay(self, *args, **kwargs):
        self.set_nodelay(True)
        return original_open(self, *args, **kwargs)

    open_with_nodelay._sets_nodelay = True  # type: ignore[attr-defined]
    WSHandler.open = open_with_nodelay  # type: ignore[method-assign]
