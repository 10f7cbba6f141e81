"""Bench-only app: on request, the server pushes a burst of updates as fast as it can.

The client sets the `command` text to "<kind> <count> <bytes> <tag>":
  small  `count` one-point streams to the `small` source, each its own PATCH-DOC;
  large  `count` replacements of the `large` source with `bytes` of float64 data, each a
         PATCH-DOC carrying one binary buffer;
then `done` shows `tag`, so the client knows the burst is over. Not one of the sample apps: the
bench mounts it next to them (bench/compose.bench.yml).
"""

import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div, TextInput

small = ColumnDataSource(data={"x": [0]}, name="small")
large = ColumnDataSource(data={"x": np.zeros(1)}, name="large")
command = TextInput(value="", name="command")
done = Div(text="", name="done")

# Two arrays per size, used in turn: Bokeh skips an update whose data equals the current one.
arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def run(attr, old, new):
    kind, count_text, size_text, tag = new.split()
    count, size = int(count_text), int(size_text)
    if kind == "small":
        for i in range(count):
            small.stream({"x": [i]}, rollover=16)
    elif kind == "large":
        items = max(1, size // 8)
        if items not in arrays:
            arrays[items] = (np.zeros(items), np.ones(items))
        for i in range(count):
            large.data = {"x": arrays[items][i % 2]}
    done.text = tag


command.on_change("value", run)
doc = curdoc()
doc.add_root(column(command, done))
# The sources are roots of their own, so their changes reach the client without a plot.
doc.add_root(small)
doc.add_root(large)
doc.title = "Push"
