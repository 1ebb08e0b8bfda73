"""GUI benchmark: scope frame rate, event-loop latency and key timestamp accuracy while the
console records a dense stream.

Three processes, all reading the one LSL clock of this machine:

- a **pusher** publishes a 64-channel, 1-kHz float32 LSL stream (``--channels``, ``--rate``)
  in 10-sample chunks, channel 0 counting samples;
- this process runs the real console (``app.console.ConsoleWindow``) on an X display (Xvfb
  unless one is given), connected to that stream, recording it to a session file, with the
  participant window focused; it measures the scope's redraws and the event loop's latency;
- an **injector** presses and releases the keys ``1`` and ``3`` through the X server's XTEST
  extension (libXtst, what xdotool uses), reading the LSL clock just before each fake event.

Key accuracy is the file's ``key_down``/``key_up`` timestamp minus the injection time: the
whole path X server -> Qt's xcb reader -> event loop -> the handler's ``local_clock()``.

Usage::

    python benchmarks/bench_gui.py                 # starts Xvfb itself when there is no display
    python benchmarks/bench_gui.py --seconds 10 --keys 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import (
    counter_check,
    fmt,
    machine_info,
    percentiles_ms,
    print_table,
    update_results,
)

AREA = "gui"


# ---------------------------------------------------------------------- pusher process
def pusher(source_id: str, channels: int, rate: float, seconds: float) -> None:
    import pylsl

    info = pylsl.StreamInfo(f"bench-gui-{source_id}", "EEG", channels, rate, "float32", source_id)
    outlet = pylsl.StreamOutlet(info, chunk_size=10)
    rng = np.random.default_rng(0)
    chunk = 10
    i = 0
    t0 = time.monotonic()
    noise = rng.normal(0, 20, (int(rate), channels)).astype(np.float32)
    while time.monotonic() - t0 < seconds:
        due = t0 + (i + chunk) / rate
        time.sleep(max(0.0, due - time.monotonic()))
        x = noise[(i % int(rate)) : (i % int(rate)) + chunk].copy()
        if len(x) < chunk:
            x = noise[:chunk].copy()
        x[:, 0] = np.arange(i, i + chunk)
        outlet.push_chunk(x)
        i += chunk
    print(json.dumps({"pushed": i}), flush=True)


# ---------------------------------------------------------------------- injector process
def injector(window: int, n_keys: int, seed: int) -> None:
    """Press and release keys 1/3 on ``window`` through XTEST; print the LSL injection times."""
    from drivers.xtest import XTestKeys

    with XTestKeys() as keys:
        keys.focus(window)
        time.sleep(0.5)
        codes = {k: keys.keycode(k) for k in ("1", "3")}
        rnd = random.Random(seed)
        for i in range(n_keys):
            key = "1" if i % 2 == 0 else "3"
            time.sleep(rnd.uniform(0.15, 0.35))
            t_down, _ = keys.key(codes[key], True)
            time.sleep(rnd.uniform(0.05, 0.12))
            t_up, _ = keys.key(codes[key], False)
            print(json.dumps({"key": key, "down": t_down, "up": t_up}), flush=True)


# ---------------------------------------------------------------------- the console
def measure(args: argparse.Namespace) -> dict:
    from PyQt6 import QtCore, QtWidgets

    from app.console import ConsoleWindow
    from app.settings import AppSettings
    from data_schema.reader import read_session
    from drivers.clock import local_clock

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench-gui"])
    tmp = Path(tempfile.mkdtemp(prefix="recall-lab-bench-gui-"))
    source_id = f"bench-gui-{uuid.uuid4().hex[:10]}"
    total = args.settle + args.seconds + args.keys * 0.5 + 10
    push = subprocess.Popen(
        [sys.executable, __file__, "--pusher", source_id, "--channels", str(args.channels),
         "--rate", str(args.rate), "--seconds", str(total)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def spin(seconds: float, until=None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
            if until is not None and until():
                return
            time.sleep(0.002)

    settings = AppSettings(tmp / "settings.ini")
    settings.set("session/out_dir", str(tmp))
    settings.set("session/protocol", "none")
    settings.set("scope/window", args.window)
    settings.set("scope/spectrum", bool(args.spectrum))
    win = ConsoleWindow(settings)
    win.session_panel.participant.setText("BENCH01")
    win.resize(1500, 950)
    win.show()
    win.connect_source(f"lsl:source_id={source_id}?markers=none&timeout=20")
    spin(60, lambda: win.feed is not None)
    if win.feed is None:
        raise SystemExit("the console could not connect to the pusher's stream")
    path = win.start_recording()
    win.show_participant()
    p = win.participant
    p.resize(1000, 700)
    p.activateWindow()
    p.raise_()
    p.setFocus()
    spin(args.settle)

    # --- scope frame rate and redraw time; event-loop latency via posted probe events
    redraws: list[float] = []
    win.scope.frame_drawn.connect(redraws.append)
    delays: list[float] = []

    class Probe(QtCore.QObject):
        def event(self, e: QtCore.QEvent) -> bool:
            if e.type() == PROBE_TYPE:
                delays.append(time.perf_counter() - e.t_post)
                return True
            return super().event(e)

    PROBE_TYPE = QtCore.QEvent.Type(QtCore.QEvent.registerEventType())
    probe = Probe()
    stop = threading.Event()

    def post_probes() -> None:  # like input arriving from another thread
        while not stop.wait(0.01):
            e = QtCore.QEvent(PROBE_TYPE)
            e.t_post = time.perf_counter()
            QtCore.QCoreApplication.postEvent(probe, e)

    import psutil

    proc = psutil.Process()
    cpu0 = proc.cpu_times()
    frames0, t0 = win.scope.frames, time.perf_counter()
    poster = threading.Thread(target=post_probes, daemon=True)
    poster.start()
    app_exec_for(app, args.seconds)
    stop.set()
    poster.join()
    wall = time.perf_counter() - t0
    cpu1 = proc.cpu_times()
    frames = win.scope.frames - frames0
    cpu = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / wall

    # --- key timestamp accuracy via XTEST. An event filter reads the LSL clock when each key
    # event reaches the participant window (just before its handler): what a timestamp taken
    # in the handler would be, to compare with the X server's time the app stores.
    handler: dict[str, list[float]] = {"down": [], "up": []}

    class HandlerClock(QtCore.QObject):
        def eventFilter(self, obj, e) -> bool:
            t = local_clock()
            if e.type() == QtCore.QEvent.Type.KeyPress and not e.isAutoRepeat():
                handler["down"].append(t)
            elif e.type() == QtCore.QEvent.Type.KeyRelease and not e.isAutoRepeat():
                handler["up"].append(t)
            return False

    clock_filter = HandlerClock()
    p.installEventFilter(clock_filter)
    inj = subprocess.Popen(
        [sys.executable, __file__, "--injector", str(int(p.winId())), "--keys", str(args.keys)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    injected: list[dict] = []

    def read_injector() -> None:
        for line in inj.stdout:
            injected.append(json.loads(line))

    reader = threading.Thread(target=read_injector, daemon=True)
    reader.start()
    while inj.poll() is None:
        spin(0.1)
    reader.join(5)
    spin(0.5)
    t_stop = local_clock()
    win.stop_recording()
    win.close()
    push.terminate()
    push.wait(10)

    s = read_session(path)
    downs = [e for e in s.events if e.label == "key_down" and e.source == "keyboard"]
    ups = [e for e in s.events if e.label == "key_up" and e.source == "keyboard"]
    keys_ok = len(downs) == len(injected) == len(ups) and all(
        json.loads(e.value)["key"] == k["key"] for e, k in zip(downs, injected)
    )
    err_down = [e.timestamp - k["down"] for e, k in zip(downs, injected)]
    err_up = [e.timestamp - k["up"] for e, k in zip(ups, injected)]
    handler_down = [t - k["down"] for t, k in zip(handler["down"], injected)]
    counter = s.eeg.data[:, 0]
    check = counter_check(counter)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "channels": args.channels,
        "rate_hz": args.rate,
        "seconds": round(wall, 2),
        "scope_window_s": args.window,
        "scope_fps": frames / wall,
        "scope_timer_fps": 1000.0 / win.scope.timer.interval(),
        "redraw": percentiles_ms(redraws),
        "event_loop_latency": percentiles_ms(delays),
        "process_cpu_cores": cpu,
        "keys_injected": len(injected),
        "keys_in_file": len(downs),
        "keys_match": bool(keys_ok),
        "key_down_error": percentiles_ms(err_down),
        "key_up_error": percentiles_ms(err_up),
        "handler_time_error": percentiles_ms(handler_down),
        "key_error_negative": int(sum(x < 0 for x in err_down + err_up)),
        "eeg_samples_in_file": len(counter),
        "eeg_counter": check,
        "recording_seconds": round(t_stop - float(s.eeg.timestamps[0]), 1),
    }


def app_exec_for(app, seconds: float) -> None:
    """Run a real Qt event loop (not a polling loop) for ``seconds``.

    A local loop, because ``QApplication.quit`` in Qt 6 also closes every window.
    """
    from PyQt6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="scope/latency measurement time")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--window", type=float, default=10.0, help="scope time window (s)")
    ap.add_argument("--keys", type=int, default=40, help="key presses to inject")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    ap.add_argument(
        "--spectrum", action="store_true", help="with the spectrum (PSD) view open beside it"
    )
    ap.add_argument("--results-dir", type=Path, default=None)
    ap.add_argument("--note", default="")
    ap.add_argument("--pusher", metavar="SOURCE_ID", help=argparse.SUPPRESS)
    ap.add_argument("--injector", metavar="WINDOW", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pusher:
        pusher(args.pusher, args.channels, args.rate, args.seconds)
        return 0
    if args.injector:
        injector(args.injector, args.keys, seed=1)
        return 0
    if not os.environ.get("DISPLAY"):
        if not shutil.which("xvfb-run"):
            print("bench_gui: no display and no xvfb-run; install xvfb", file=sys.stderr)
            return 2
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__]
        return subprocess.call([*cmd, *(argv if argv is not None else sys.argv[1:])])
    os.environ["QT_QPA_PLATFORM"] = "xcb"  # real X events, not the offscreen platform
    machine = machine_info(args.note)
    fig = measure(args)
    machine["load_average_1m_5m_end"] = list(machine_info()["load_average_1m_5m"])
    he = fig["handler_time_error"]
    kd, ku, lat, rd = (
        fig["key_down_error"],
        fig["key_up_error"],
        fig["event_loop_latency"],
        fig["redraw"],
    )
    table = [
        ("stream recorded", f"{fig['channels']} ch × {fig['rate_hz']:g} Hz", "LSL, float32, "
         "recorded to HDF5 while the scope shows it"),
        ("scope frame rate", f"{fmt(fig['scope_fps'], 1)} fps",
         f"redraws per second (timer asks {fig['scope_timer_fps']:.0f}), "
         f"{fig['scope_window_s']:g} s window, all channels, RMS beside them"
         + (", spectrum view open (4-s Welch twice a second)" if args.spectrum else "")),
        ("scope redraw p50 / p99", f"{fmt(rd['p50_ms'])} / {fmt(rd['p99_ms'])} ms",
         "time in the timer slot: the feed's prepared frame handed to every curve (setData)"),
        ("event-loop latency p50 / p99", f"{fmt(lat['p50_ms'])} / {fmt(lat['p99_ms'])} ms",
         f"posted event -> handled on the GUI thread, every 10 ms (max {fmt(lat['max_ms'])} ms)"),
        ("key_down error p50 / p99", f"{fmt(kd['p50_ms'])} / {fmt(kd['p99_ms'])} ms",
         f"file timestamp - XTEST injection time, {fig['keys_injected']} presses "
         f"(max {fmt(kd['max_ms'])} ms)"),
        ("key_up error p50 / p99", f"{fmt(ku['p50_ms'])} / {fmt(ku['p99_ms'])} ms",
         "same for releases"),
        ("handler-time error p50 / p99",
         f"{fmt(he['p50_ms'])} / {fmt(he['p99_ms'])} ms",
         "what a clock read in the key handler would give instead of the X server's time "
         "(includes the event loop's latency)"),
        ("keys in file", f"{fig['keys_in_file']} / {fig['keys_injected']}",
         "every injected press recorded with the right key" if fig["keys_match"]
         else "MISMATCH between injected and recorded keys"),
        ("EEG samples lost", str(fig["eeg_counter"].get("missing", "n/a")),
         "from the counter channel of the file"),
        ("console CPU", f"{fmt(fig['process_cpu_cores'])} cores",
         "this process (GUI + acquisition + writer threads), 1.0 = one core busy"),
    ]  # fmt: skip
    print_table("GUI while recording", table)
    kwargs = {"results_dir": args.results_dir} if args.results_dir else {}
    out = update_results(
        AREA,
        "gui_spectrum" if args.spectrum else "gui",
        fig,
        table,
        title="Console: scope, event loop and key timestamps while recording"
        + (", spectrum view open" if args.spectrum else ""),
        summary=(
            "The real console under Xvfb records a 64-channel 1-kHz LSL stream while its scope "
            "redraws; keys are injected through XTEST by another process, and the file's key "
            "timestamps are compared with the LSL time read just before each injection."
        ),
        machine=machine,
        **kwargs,
    )
    print(f"\nwrote {out}")
    return 0 if fig["keys_match"] and fig["eeg_counter"].get("missing", 1) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
