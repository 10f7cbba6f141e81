"""The TCP_NODELAY patch against the Bokeh that the image installs (run by `npm run test:python`)."""

from bokeh.server.views.ws import WSHandler
from launcher.nodelay import install_nodelay


class FakeHandler:
    """Stands in for a WSHandler instance: records what the patched open() does, in order."""

    def __init__(self):
        self.calls = []

    def set_nodelay(self, value):
        self.calls.append(("set_nodelay", value))


def test_nodelay_is_set_before_bokeh_opens_the_socket_and_installed_once(monkeypatch):
    def original_open(self, *args, **kwargs):
        self.calls.append(("open", args, kwargs))
        return "opened"

    monkeypatch.setattr(WSHandler, "open", original_open)
    install_nodelay()
    patched = WSHandler.open
    assert patched is not original_open
    assert patched.__name__ == "original_open"  # functools.wraps keeps Bokeh's own name for logs

    install_nodelay()
    assert WSHandler.open is patched, "a second install must not wrap the handler twice"

    handler = FakeHandler()
    assert patched(handler, "/bokeh/ping/ws", extra=1) == "opened"
    assert handler.calls == [("set_nodelay", True), ("open", ("/bokeh/ping/ws",), {"extra": 1})]
