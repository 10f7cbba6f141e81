"""Bench-only app: every interaction costs the server a fixed amount of CPU in Python.

The client moves the `work` slider; the callback computes for WORK_SECONDS of this thread's own
CPU time, then sets `done` to "done <value>", one small PATCH-DOC back. So one interaction is one
client message, ~20 ms of pure Python, one reply, the shape of a dashboard whose callbacks
filter or aggregate in Python. One Bokeh process runs callbacks on one thread: its interactions
per second are bounded by 1 / WORK_SECONDS, and only more processes (replicas) raise that.

The budget is CPU time, not wall time: a wall-clock busy loop on a crowded machine would finish
on time while getting a fraction of a core, and replicas would seem to scale past the cores the
machine has. Not one of the sample apps: the bench mounts it next to them (bench/compose.bench.yml).
"""

import time

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div, Slider

#: CPU time one interaction costs.
WORK_SECONDS = 0.020

work = Slider(title="Work", value=0, start=0, end=1000, step=1, name="work")
done = Div(text="done -", name="done")


def compute(seconds: float) -> int:
    """Integer arithmetic until this thread has used `seconds` of CPU; reading the clock is a
    system call, so it is read once per thousand steps."""
    deadline = time.thread_time() + seconds
    x = 1
    while time.thread_time() < deadline:
        for i in range(1000):
            x = (x * 31 + i) % 1_000_003
    return x


def answer(attr, old, new):
    compute(WORK_SECONDS)
    done.text = f"done {new:g}"


work.on_change("value", answer)

curdoc().add_root(column(work, done))
curdoc().title = "CPU"
