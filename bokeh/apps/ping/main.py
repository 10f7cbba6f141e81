"""The smallest round trip: move the slider and the server answers "pong <value>"."""

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div, Slider

ping = Slider(title="Ping", value=0, start=0, end=1000, step=1, name="ping", sizing_mode="stretch_width")
pong = Div(text="pong -", name="pong")


def answer(attr, old, new):
    pong.text = f"pong {new:g}"


ping.on_change("value", answer)

curdoc().add_root(column(ping, pong, sizing_mode="stretch_width"))
curdoc().title = "Ping"
