"""pytest fixtures of the real-input rig (a plugin listed in ``tests/conftest.py``).

- ``x_server`` (session): Xvfb with openbox; skips when the tools are not installed.
- ``real_app`` (test): a factory, ``real_app(**RealApp options) -> RealApp``; every app it
  started is quit (or killed) after the test, with its log printed if the test failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .xserver import XServer, missing_tools

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


@pytest.fixture(scope="session")
def x_server() -> Iterator[XServer]:
    missing = missing_tools()
    if missing:
        pytest.skip(
            f"real-input tests need {', '.join(missing)} (`make system-deps` installs them: "
            "xvfb openbox x11-utils xdotool libxtst6)"
        )
    with XServer() as x:
        yield x


@pytest.fixture
def real_app(x_server: XServer, tmp_path, request) -> Iterator[Callable[..., object]]:
    from .person import RealApp

    apps: list[RealApp] = []

    def start(**options) -> RealApp:
        app = RealApp(x_server, tmp_path / f"app{len(apps)}", **options)
        apps.append(app)
        app.start()
        return app

    yield start
    failed = request.node.stash.get(_FAILED, False)
    for app in apps:
        proc = app.proc
        app.close(failed=failed)
        assert proc is None or proc.poll() is not None, "the app's process outlived the test"
