"""A sine wave shaped by sliders: every change is computed on the server."""

from html import escape

import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Div, Slider, TextInput
from bokeh.plotting import figure

X = np.linspace(0, 4 * np.pi, 200)


def wave(amplitude: float, frequency: float, phase: float, offset: float) -> dict:
    return {"x": X, "y": amplitude * np.sin(frequency * X + phase) + offset}


source = ColumnDataSource(data=wave(1.0, 1.0, 0.0, 0.0), name="source")

plot = figure(
    title="y = A·sin(k·x + φ) + c",
    height=420,
    sizing_mode="stretch_width",
    x_range=(0, 4 * np.pi),
    y_range=(-10, 10),
    tools="pan,wheel_zoom,box_zoom,reset,save",
)
plot.line("x", "y", source=source, line_width=3, line_alpha=0.7)
plot.xaxis.axis_label = "x"
plot.yaxis.axis_label = "y"

title = TextInput(title="Plot title", value=plot.title.text, name="title")
amplitude = Slider(title="Amplitude A", value=1.0, start=0.0, end=5.0, step=0.1, name="amplitude")
frequency = Slider(title="Frequency k", value=1.0, start=0.1, end=5.1, step=0.1, name="frequency")
phase = Slider(title="Phase φ", value=0.0, start=0.0, end=2 * np.pi, step=0.1, name="phase")
offset = Slider(title="Offset c", value=0.0, start=-5.0, end=5.0, step=0.1, name="offset")


def update_title(attr, old, new):
    plot.title.text = new


def update_data(attr, old, new):
    # A new dict goes to the browser as one PATCH-DOC; numpy columns travel as binary frames.
    source.data = wave(amplitude.value, frequency.value, phase.value, offset.value)


title.on_change("value", update_title)
for slider in (amplitude, frequency, phase, offset):
    slider.on_change("value", update_data)

# Page query arguments reach the app: /apps/sliders?title=... sets the starting title.
arguments = curdoc().session_context.request.arguments if curdoc().session_context else {}
if arguments.get("title"):
    title.value = arguments["title"][0].decode("utf-8", "replace")[:200]

# The gateway signs what it knows about the request into the session token; the signed-in user
# (when the gateway authenticates) is the field apps most often want.
payload = curdoc().session_context.token_payload if curdoc().session_context else {}
user = payload.get("user")
viewer = Div(text=f"Signed in as <b>{escape(user)}</b>" if user else "Not signed in", name="viewer")

# Widgets are 300 px wide plus a 5 px margin on each side.
controls = column(viewer, title, amplitude, frequency, phase, offset, width=320)
curdoc().add_root(row(controls, plot, sizing_mode="stretch_width"))
curdoc().title = "Sliders"
