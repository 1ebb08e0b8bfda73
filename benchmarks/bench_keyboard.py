"""Participant keyboard benchmark: timestamp error of XInput2 raw key events under Xvfb.

A private Xvfb (so no key lands in anyone's session) and the participant keyboard
(``drivers.keyboard.open_keyboard("x11:Virtual core XTEST keyboard")``) reading it in its
background thread. This process presses and releases ``1`` and ``3`` ``--presses`` times
through the X server's XTEST extension (libXtst, what xdotool uses), reading the LSL clock
just before each fake event and again once ``XSync`` returns (the server has then handled the
request, which is when it stamps the key).

Figures, all file-free (the driver's :class:`KeyEvent` as ``on_event`` receives it):

- key_down / key_up error: event timestamp minus the LSL time just before the injection;
- in-request fraction: share of timestamps inside [before, after XSync] +-0.5 ms (the server's
  millisecond truncation), which must be 1.0;
- delivery latency: LSL time when ``on_event`` ran minus the event timestamp (how late a
  consumer learns of the key; not an error in the timestamp);
- the same error had the event been stamped at the start of its millisecond (no +0.5 ms), and
  had it been stamped when the reader thread got it;
- the X server's clock against ``CLOCK_MONOTONIC`` (property round trips), and how many raw
  events a key held for 1.5 s produces (the server's auto-repeat makes none).

Usage::

    python benchmarks/bench_keyboard.py                 # 200 presses
    python benchmarks/bench_keyboard.py --presses 20 --results-dir /tmp/r
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import RESULTS_DIR, fmt, machine_info, percentiles_ms, print_table, update_results

AREA = "keyboard"
DEVICE = "Virtual core XTEST keyboard"


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """A private Xvfb on a free display number (``-displayfd``)."""
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        raise SystemExit("bench_keyboard: Xvfb is not installed (apt install xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp",
         "-noreset"],
        pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(w)
    buf = b""
    end = time.monotonic() + 30
    while not buf.endswith(b"\n") and time.monotonic() < end:
        if select.select([r], [], [], 1.0)[0]:
            chunk = os.read(r, 64)
            if not chunk:
                break
            buf += chunk
    os.close(r)
    if not buf.endswith(b"\n"):
        proc.kill()
        proc.wait()
        raise SystemExit("bench_keyboard: Xvfb did not start")
    return proc, f":{buf.decode().strip()}"


def measure(presses: int, seed: int) -> dict:
    from drivers.clock import local_clock
    from drivers.keyboard import open_keyboard
    from drivers.keyboard_x11 import server_time_probe
    from drivers.xtest import XTestKeys

    probe = server_time_probe(200)
    received: queue.Queue = queue.Queue()

    def on_event(event) -> None:  # cheap: the LSL time it arrived, and the event
        received.put((local_clock(), event))

    xtest = XTestKeys()
    rnd = random.Random(seed)
    rows = []  # (down, key, t_before, t_after, timestamp, arrived)
    wrong = 0
    try:
        with open_keyboard(f"x11:{DEVICE}", on_event) as kb:
            mapping = kb.clock_mapping
            for i in range(presses):
                key = "1" if i % 2 == 0 else "3"
                for down in (True, False):
                    time.sleep(rnd.uniform(0.02, 0.06) if down else rnd.uniform(0.03, 0.08))
                    t0, t1 = xtest.key(key, down)
                    arrived, ev = received.get(timeout=2)
                    wrong += (ev.key, ev.down, ev.repeat) != (key, down, False)
                    rows.append((down, key, t0, t1, ev.timestamp, arrived))
            # a key held 1.5 s: the server auto-repeats it for focused windows after 660 ms
            xtest.key("3", True)
            time.sleep(1.5)
            xtest.key("3", False)
            time.sleep(0.3)
            held = []
            while not received.empty():
                held.append(received.get_nowait()[1])
    finally:
        xtest.close()
    a = np.array([r[2:] for r in rows], dtype=np.float64)
    down = np.array([r[0] for r in rows])
    t0, t1, ts, arrived = a.T
    err = ts - t0
    # The server's own stamp (start of its ms), recovered exactly: the driver's timestamp is
    # stamp + 0.5 ms, or the reader's read time when that came first, which then lies less
    # than 0.5 ms after the stamp; either way flooring to the ms gives the stamp back.
    mono = mapping["monotonic_to_lsl_s"]
    err_start = np.floor((ts - mono) * 1000.0 + 1e-6) / 1000.0 + mono - t0
    inside = (ts >= t0 - 0.0005 - 1e-6) & (ts <= t1 + 0.0005 + 1e-6)
    return {
        "presses": presses,
        "events": len(rows),
        "wrong_events": int(wrong),
        "key_down_error": percentiles_ms(err[down]),
        "key_up_error": percentiles_ms(err[~down]),
        "error_mean_ms": round(float(np.mean(err)) * 1e3, 3),
        "error_mean_ms_start_of_ms": round(float(np.mean(err_start)) * 1e3, 3),
        "error_abs_mean_ms": round(float(np.mean(np.abs(err))) * 1e3, 3),
        "error_abs_mean_ms_start_of_ms": round(float(np.mean(np.abs(err_start))) * 1e3, 3),
        "key_error_start_of_ms": percentiles_ms(err_start),
        "xtest_request": percentiles_ms(t1 - t0),
        "in_request_fraction": float(np.mean(inside)),
        "delivery_latency": percentiles_ms(arrived - ts),
        "read_time_error": percentiles_ms(arrived - t0),
        "held_key_events": [(e.key, e.down, e.repeat) for e in held],
        "server_clock": probe,
        "clock_mapping": mapping,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=200, help="key presses to inject")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--note", default="", help="what else ran on the machine")
    args = ap.parse_args(argv)
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    try:
        machine = machine_info(args.note)
        fig = measure(args.presses, args.seed)
        machine["load_average_1m_5m_end"] = list(machine_info()["load_average_1m_5m"])
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    kd, ku, req, lat, rt = (
        fig["key_down_error"],
        fig["key_up_error"],
        fig["xtest_request"],
        fig["delivery_latency"],
        fig["read_time_error"],
    )
    sc = fig["server_clock"]
    q1, q50, q99 = sc["stamp_minus_monotonic_ms_p1_p50_p99"]
    held = fig["held_key_events"]
    table = [
        ("key_down error p50 / p99", f"{fmt(kd['p50_ms'])} / {fmt(kd['p99_ms'])} ms",
         f"event timestamp - LSL time before the XTEST request, {fig['presses']} presses "
         f"(max {fmt(kd['max_ms'])} ms)"),
        ("key_up error p50 / p99", f"{fmt(ku['p50_ms'])} / {fmt(ku['p99_ms'])} ms",
         f"same for releases (max {fmt(ku['max_ms'])} ms)"),
        ("XTEST request p50 / p99", f"{fmt(req['p50_ms'])} / {fmt(req['p99_ms'])} ms",
         "LSL time before the request to XSync's return: the server stamps within it"),
        ("timestamps within the request", f"{fig['in_request_fraction'] * 100:.1f} %",
         "inside [before, after XSync] +-0.5 ms (the server's ms truncation)"),
        ("mean error, centre / start of ms",
         f"{fmt(fig['error_mean_ms'])} / {fmt(fig['error_mean_ms_start_of_ms'])} ms",
         "the driver's time (centre of the server's ms), and the server's stamp as it is; "
         f"mean absolute error {fmt(fig['error_abs_mean_ms'])} / "
         f"{fmt(fig['error_abs_mean_ms_start_of_ms'])} ms"),
        ("delivery latency p50 / p99", f"{fmt(lat['p50_ms'])} / {fmt(lat['p99_ms'])} ms",
         f"on_event ran - event timestamp (max {fmt(lat['max_ms'])} ms); not a timing error"),
        ("read-time error p50 / p99", f"{fmt(rt['p50_ms'])} / {fmt(rt['p99_ms'])} ms",
         "what stamping when the reader thread got the event would give instead"),
        ("server stamp - CLOCK_MONOTONIC", f"{q1:.2f} / {q50:.2f} / {q99:.2f} ms",
         f"p1 / p50 / p99 over {sc['n_round_trips']} round trips (clock read before the "
         "request): in [-1, 0] = CLOCK_MONOTONIC truncated to the ms"),
        ("key held 1.5 s", f"{len(held)} raw events",
         "XI2 raw events for one held key: " + ", ".join(
             f"{k} {'down' if d else 'up'}{' (repeat)' if r else ''}" for k, d, r in held)
         + "; the server's auto-repeat makes none"),
        ("wrong events", str(fig["wrong_events"]), "key name, down/up or repeat flag wrong"),
    ]  # fmt: skip
    print_table("Participant keyboard (XInput2 raw events, Xvfb)", table)
    out = update_results(
        AREA,
        "x11",
        fig,
        table,
        title="Participant keyboard: XInput2 raw key events under Xvfb",
        summary=(
            "drivers.keyboard reads the XTEST keyboard of a private Xvfb through XInput2 raw "
            "events in its own thread; keys are injected through XTEST by the same process, "
            "which reads the LSL clock just before each request and after XSync. Timestamps "
            "are the X server's (CLOCK_MONOTONIC ms) at the centre of their millisecond."
        ),
        machine=machine,
        results_dir=args.results_dir,
    )
    print(f"\nwrote {out}")
    ok = fig["wrong_events"] == 0 and fig["in_request_fraction"] == 1.0 and len(held) == 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
