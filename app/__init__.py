"""The Qt face of recall-lab (console, participant display) and the command line.

Only this package imports Qt, and only in its GUI modules; the CLI starts without it.
"""
