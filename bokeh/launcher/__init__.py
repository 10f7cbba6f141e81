"""The Bokeh launcher's parts; serve.py is the program that puts them together.

settings  read and check the environment (also used by healthcheck.py and keygen.py)
apps      find the app folders to serve
argv      build the `bokeh serve` command line and the start-up log line
nodelay   give Bokeh's WebSockets TCP_NODELAY
devmode   restart Bokeh when an app file changes
"""
