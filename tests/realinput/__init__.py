"""A rig that drives the real app with real input, as a person would.

The app runs unchanged (``recall-lab app``) on its own X server (Xvfb) under a window manager
(openbox); a test acts only through the X server: the pointer and the keyboard, through the
XTEST extension (xdotool and libXtst), so focus moves as it does when a person clicks. The
app's process answers questions about what is on screen (where a button is, which window is
active, whether a file is recording) and nothing else: it never receives input from the test
by any other path.

- :mod:`.xserver`: Xvfb and openbox, started and stopped.
- :mod:`.child`: the app's process: the real entry point plus a read-only introspection pipe.
- :mod:`.person`: :class:`~.person.RealApp`, the test's hands and eyes.
- :mod:`.fixtures`: pytest fixtures (registered in ``tests/conftest.py``).
"""
