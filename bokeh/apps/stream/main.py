"""A live random walk: the server pushes a new point every 500 ms without being asked."""

import random

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div
from bokeh.plotting import figure

ROLLOVER = 200  # points kept in the browser and on the server
PERIOD_MS = 500

source = ColumnDataSource(data={"x": [], "y": []}, name="source")

plot = figure(
    title="Live random walk",
    height=400,
    sizing_mode="stretch_width",
    tools="pan,wheel_zoom,box_zoom,reset,save",
)
plot.line("x", "y", source=source, line_width=2)
plot.xaxis.axis_label = "step"
plot.yaxis.axis_label = "value"

status = Div(text="0 points", name="status")

state = {"step": 0, "value": 0.0}


def add_point():
    state["step"] += 1
    state["value"] += random.gauss(0, 1)
    # Only the new point travels to the browser; old points fall off after ROLLOVER.
    source.stream({"x": [state["step"]], "y": [state["value"]]}, rollover=ROLLOVER)
    shown = len(source.data["x"])
    status.text = f"{shown} point{'' if shown == 1 else 's'} shown, {state['step']} received"


curdoc().add_periodic_callback(add_point, PERIOD_MS)
curdoc().add_root(column(status, plot, sizing_mode="stretch_width"))
curdoc().title = "Stream"
