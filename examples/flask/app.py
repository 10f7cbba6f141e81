"""A small Flask app that embeds Bokeh apps served behind the same gateway.

The gateway (HOST_APP_URL=http://flask:8000) sends every request outside /bokeh to this app, so
the pages below and the Bokeh apps they embed share one origin. Embedding takes nothing but
Bokeh's own API and a relative URL: `server_document("/bokeh/sliders")` writes a <script> that
asks the gateway for autoload.js, and the gateway signs the session there. This app never holds
the session key and never talks to Bokeh itself.

Settings (environment):
  BOKEH_PREFIX  where the gateway serves Bokeh (default /bokeh, as the gateway's BOKEH_PREFIX)
"""

from __future__ import annotations

import os

from bokeh.embed import server_document
from flask import Flask, render_template, request
from werkzeug.middleware.proxy_fix import ProxyFix

# The gateway is the one proxy in front of this app and recomputes X-Forwarded-* for every
# request, so one hop of each is believed: url_for(_external=True) then names the public address.
TRUSTED_HOPS = 1
# A feedback message longer than this is cut: the page echoes it back.
MAX_MESSAGE_CHARS = 500


def embed(app: str, **arguments: str) -> str:
    """The autoload <script> for one Bokeh app, with page arguments handed on to it."""
    prefix = os.environ.get("BOKEH_PREFIX", "/bokeh").rstrip("/")
    return server_document(f"{prefix}/{app}", arguments=arguments or None)


def create_app() -> Flask:
    app = Flask(__name__)
    app.wsgi_app = ProxyFix(
        app.wsgi_app, x_for=TRUSTED_HOPS, x_proto=TRUSTED_HOPS, x_host=TRUSTED_HOPS, x_port=TRUSTED_HOPS
    )

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/one")
    def one() -> str:
        # ?title=... reaches the sliders app, which starts with that plot title.
        title = request.args.get("title", "")
        return render_template("one.html", sliders=embed("sliders", **({"title": title} if title else {})))

    @app.get("/two")
    def two() -> str:
        return render_template("two.html", sliders=embed("sliders"), stream=embed("stream"))

    @app.route("/feedback", methods=["GET", "POST"])
    def feedback() -> str:
        if request.method == "POST":
            name = request.form.get("name", "").strip()[:100] or "anonymous"
            message = request.form.get("message", "").strip()[:MAX_MESSAGE_CHARS]
            return render_template("thanks.html", name=name, message=message)
        return render_template("feedback.html")

    @app.get("/health")
    def health() -> dict[str, str]:
        # For the container healthcheck, which asks this app directly, not through the gateway.
        return {"status": "ok"}

    return app
