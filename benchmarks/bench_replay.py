"""Benchmark: how faithfully and how fast a recorded session is played back.

A session of ``--seconds`` (default 60) x ``--channels`` (64) x ``--rate`` (1000 Hz) is written
with :class:`SessionWriter`, channel 0 counting samples, with one event per second. Then:

- **real time** (``speed=1``): :class:`ReplaySource` plays it; every chunk's arrival in the
  source's ring buffer (the moment the recorder or the scope can read it) is timed on the LSL
  clock and compared with the time its last sample was meant to exist,
  ``t_start + (t_i - t_0)`` (``t_start`` = the replay's time of sample 0). Figures: timing error
  p50/p99/max in ms, and the drift (median error over the last 5 s minus the first 5 s). The
  same for events. Every sample must arrive exactly once, in order, with its original spacing.
- **through LSL** (``speed=1``): ``recall-lab replay <file> --lsl`` in its own process, read
  by a plain pylsl inlet here; per-sample error = when the inlet returned the sample minus its
  published timestamp (= its intended time).
- **as fast as possible** (``speed=0``): the source alone, and end to end as
  ``recall-lab record --source replay:<file>?speed=max`` runs it (ReplaySource -> Recorder ->
  SessionWriter into a new file, checked for loss): recording seconds per wall second.

Run ``python benchmarks/bench_replay.py`` (about 80 s) or with smaller ``--seconds`` and
``--channels`` for a quick check.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import (
    RESULTS_DIR,
    counter_check,
    fmt,
    machine_info,
    percentiles_ms,
    print_table,
    update_results,
)

AREA = "foundation"
SECTION = "replay"
#: Timestamp of the first sample in the benchmark session (any origin: replay moves it to now).
ORIGIN = 1000.0


def make_session(path: Path, seconds: float, channels: int, rate: float) -> int:
    """Write the benchmark session: counter on channel 0, noise elsewhere, 1 event per second."""
    from data_schema.types import Event, StreamInfo
    from data_schema.writer import SessionWriter

    n_total = round(seconds * rate)
    names = ["counter"] + [f"E{k:03d}" for k in range(1, channels)]
    info = StreamInfo(
        name="eeg",
        channel_names=names,
        channel_types=["misc"] + ["eeg"] * (channels - 1),
        units=["counts"] + ["uV"] * (channels - 1),
        nominal_rate=rate,
        source="benchmark",
    )
    rng = np.random.default_rng(1)
    block_len = int(rate)
    block = (rng.standard_normal((block_len, channels)) * 10).astype(np.float32)
    t0 = ORIGIN
    with SessionWriter(path, participant_id="BENCH01", protocol="benchmark") as w:
        w.add_stream("eeg", info)
        for first in range(0, n_total, block_len):
            n = min(block_len, n_total - first)
            data = block[:n].copy()
            data[:, 0] = np.arange(first, first + n, dtype=np.float32)
            w.append("eeg", data, t0 + np.arange(first, first + n) / rate)
        w.add_events(
            Event(t0 + s, "protocol", "tick", str(s)) for s in range(int(seconds)) if s > 0
        )
    return n_total


class Arrivals:
    """Observe a source's ring buffer writes and events: LSL time, stamps and counters."""

    def __init__(self, source) -> None:
        from drivers.clock import local_clock

        self.chunks: list[tuple[float, float, float, float, int]] = []
        self.events: list[tuple[float, float]] = []
        buf = source.buffer
        write, emit = buf.write, source.emit

        def timed_write(data: np.ndarray, ts: np.ndarray) -> int:
            n = write(data, ts)
            if n:
                self.chunks.append(
                    (local_clock(), float(ts[n - 1]), float(data[0, 0]), float(data[n - 1, 0]), n)
                )
            return n

        def timed_emit(event) -> None:
            emit(event)
            self.events.append((local_clock(), event.timestamp))

        buf.write = timed_write
        source.emit = timed_emit

    def chunk_array(self) -> np.ndarray:
        return np.array(self.chunks, dtype=np.float64).reshape(-1, 5)

    def continuity(self, n_total: int) -> dict[str, int]:
        """Loss, duplicates and reordering from the first/last counter of every chunk."""
        c = self.chunk_array()
        if not len(c):
            return counter_check(np.empty(0), n_total)
        # Rebuild the counter sequence chunk by chunk: first .. last must span n samples.
        firsts, lasts, ns = c[:, 2].astype(np.int64), c[:, 3].astype(np.int64), c[:, 4]
        inside = int(np.count_nonzero(lasts - firsts + 1 != ns))
        seq = np.concatenate([np.arange(f, f + n) for f, n in zip(firsts, ns.astype(np.int64))])
        out = counter_check(seq, n_total)
        out["chunks_not_contiguous"] = inside
        return out


def wait_finished(source, timeout: float) -> float:
    """Wait for a finite source to deliver everything; return the LSL time it finished."""
    from drivers.clock import local_clock

    end = time.monotonic() + timeout
    while not source.finished:
        if source.error is not None:
            raise RuntimeError(str(source.error))
        if time.monotonic() > end:
            raise RuntimeError(f"replay did not finish within {timeout:.0f} s")
        time.sleep(0.002)
    return local_clock()


def real_time(path: Path, n_total: int, rate: float, seconds: float) -> dict:
    """Replay at speed 1 and time every chunk's arrival against its intended time."""
    from drivers.replay import ReplaySource

    src = ReplaySource(path, speed=1.0)
    src.open()
    arr = Arrivals(src)
    src.start()
    try:
        wait_finished(src, seconds * 3 + 30)
    finally:
        src.stop()
    c = arr.chunk_array()
    arrival, stamp_last = c[:, 0], c[:, 1]
    last_idx = c[:, 3]
    # Intended time of each chunk's last sample: the replay's time of sample 0 plus the
    # recording's own offset of that sample (file timestamps are t0 + i / rate).
    t_start = float(src.clock_mapping["offset"]) + ORIGIN
    intended = t_start + last_idx / rate
    err = arrival - intended
    rel = intended - t_start
    # Every sample: its chunk's arrival minus its own intended time (adds the chunk's span).
    firsts, ns = c[:, 2].astype(np.int64), c[:, 4].astype(np.int64)
    idx = np.concatenate([np.arange(f, f + n) for f, n in zip(firsts, ns)])
    per_sample = np.repeat(arrival, ns) - (t_start + idx / rate)
    window = min(5.0, rel.max() / 4)  # short quick-check runs: compare the first/last quarter
    head, tail = err[rel < window], err[rel > rel.max() - window]
    out = {
        "chunks": len(c),
        "chunk_samples_median": float(np.median(c[:, 4])),
        "timing_error": percentiles_ms(err),
        "timing_error_per_sample": percentiles_ms(per_sample),
        "early_chunks": int(np.count_nonzero(err < 0)),
        "drift_ms": round(float(np.median(tail) - np.median(head)) * 1e3, 3),
        "stamp_error_ms_max": round(float(np.max(np.abs(stamp_last - intended))) * 1e3, 6),
        "counter": arr.continuity(n_total),
    }
    if arr.events:
        ev = np.array(arr.events)
        out["event_timing_error"] = percentiles_ms(ev[:, 0] - ev[:, 1])
    if len(err) > 10:
        slope = np.polyfit(rel, err, 1)[0]
        out["drift_slope_ms_per_min"] = round(float(slope) * 60e3, 3)
    return out


def as_fast_as_possible(path: Path, n_total: int, rate: float, seconds: float) -> dict:
    """Replay at speed 0 with no reader: how fast the source hands samples to its buffer."""
    from drivers.clock import local_clock
    from drivers.replay import ReplaySource

    src = ReplaySource(path, speed=0.0)
    src.open()
    arr = Arrivals(src)
    t0 = local_clock()
    src.start()
    try:
        t1 = wait_finished(src, seconds * 2 + 60)
    finally:
        src.stop()
    wall = t1 - t0
    c = arr.chunk_array()
    # Sustained speed: recording seconds between the first and last chunk over the wall time
    # between their arrivals (without the replay's fixed lead time before the first sample).
    span = c[-1, 0] - c[0, 0] if len(c) > 1 else float("nan")
    return {
        "wall_s": round(wall, 3),
        "x_real_time_including_start": round(seconds / wall, 1),
        "x_real_time": round((c[-1, 3] - c[0, 3]) / rate / span, 1) if span > 0 else None,
        "speed_cap_x": src.effective_speed,
        "counter": arr.continuity(n_total),
    }


def as_fast_as_possible_to_file(path: Path, out: Path, n_total: int, seconds: float) -> dict:
    """``record --source replay:<file>?speed=max``: replay -> Recorder -> new session file."""
    from data_schema.reader import read_session
    from data_schema.recorder import Recorder
    from data_schema.writer import SessionWriter
    from drivers.spec import parse_source

    src = parse_source(f"replay:{path}?speed=max")
    src.open()
    writer = SessionWriter(out, participant_id="BENCH01", protocol="benchmark-copy")
    rec = Recorder(writer, {"eeg": src})
    t0 = time.monotonic()
    rec.start()
    try:
        wait_finished(src, seconds * 2 + 60)
    finally:
        rec.stop()
    wall = time.monotonic() - t0
    s = read_session(out)
    st = rec.status()
    return {
        "wall_s": round(wall, 3),
        "x_real_time": round(seconds / wall, 1),
        "counter": counter_check(s.streams["eeg"].data[:, 0], n_total),
        "samples_lost_reported": int(sum(st.samples_lost.values())),
        "events_copied": len([e for e in s.events if e.label == "tick"]),
    }


def through_lsl(path: Path, n_total: int, rate: float, seconds: float) -> dict:
    """``recall-lab replay <file> --lsl`` in its own process, received by a plain pylsl inlet.

    The inlet applies no processing, so each sample's timestamp is the one the replay
    published: its intended time on the (shared, same-machine) LSL clock. The error is the
    LSL time the inlet returned the sample's chunk minus that timestamp. The inlet joins a
    moment after the replay started; samples before it joined are not counted as lost.
    """
    import pylsl

    from drivers.clock import local_clock

    name = f"recall-lab-bench-replay-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "app.cli", "replay", str(path), "--lsl", "--name", name]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    chunks: list[tuple[float, np.ndarray, np.ndarray]] = []
    try:
        found = pylsl.resolve_byprop("name", name, minimum=1, timeout=30)
        if not found:
            raise RuntimeError(f"replay outlet {name} not found: {proc.stderr.read()}")
        inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=0)
        inlet.open_stream(timeout=10)
        deadline = time.monotonic() + seconds * 2 + 30
        while time.monotonic() < deadline:
            # pull_sample returns as soon as a sample is there (pull_chunk with a timeout
            # would wait to fill its buffer); then take the rest of the chunk at once.
            sample, stamp = inlet.pull_sample(timeout=0.2)
            if stamp is None:
                if proc.poll() is not None:
                    break
                continue
            now = local_clock()
            data, stamps = inlet.pull_chunk(timeout=0.0, max_samples=4096, as_numpy=True)
            counter = np.concatenate([[sample[0]], data[:, 0] if len(stamps) else []])
            chunks.append((now, counter, np.concatenate([[stamp], stamps])))
        inlet.close_stream()
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)
    if not chunks:
        raise RuntimeError("no samples arrived through LSL")
    arrival = np.concatenate([np.full(len(s), t) for t, _, s in chunks])
    counter = np.concatenate([c for _, c, _ in chunks])
    stamps = np.concatenate([s for _, _, s in chunks])
    check = counter_check(counter, n_total)
    return {
        "timing_error_per_sample": percentiles_ms(arrival - stamps),
        "timing_error_last_in_chunk": percentiles_ms([t - s[-1] for t, _, s in chunks]),
        "chunks": len(chunks),
        "counter": check,
        "joined_after_samples": check.get("missing_at_start", 0),
        "replay_exit_code": proc.returncode,
    }


SUMMARY = (
    "A session written with `SessionWriter` (channel 0 counts samples, one event per second) is "
    "played back by `ReplaySource`. Real time: each chunk's arrival in the source's ring buffer "
    "(when the recorder or the scope can read it) minus the time its last sample was meant to "
    "exist on the LSL clock (replay start + the sample's offset in the recording); positive = "
    "late; per sample: the chunk's arrival minus each sample's own intended time (so it adds the "
    "chunk's span). Drift: median error over the last 5 s minus the first 5 s. Through LSL: "
    "`recall-lab replay <file> --lsl` in its own process, received by a pylsl inlet with no "
    "processing; error = when the inlet returned a sample minus its published (intended) "
    "timestamp. As fast as possible: "
    "recording seconds per wall second, for the source alone (`speed=0`, capped by design at "
    "5 x the ring buffer's seconds) and end to end into a new session file, as `recall-lab "
    "record --source replay:<file>?speed=max` runs it."
)


def build_table(fig: dict) -> list[tuple[str, str, str]]:
    rt, fast, to_file = fig["real_time"], fig["max_speed_source"], fig["max_speed_to_file"]
    e = rt["timing_error"]
    rows = [
        (
            "real-time timing error p50 / p99",
            f"{fmt(e['p50_ms'])} / {fmt(e['p99_ms'])} ms",
            f"max {fmt(e['max_ms'])} ms over {rt['chunks']} chunks; positive = late",
        ),
        (
            "per-sample timing error p50 / p99",
            f"{fmt(rt['timing_error_per_sample']['p50_ms'])} / "
            f"{fmt(rt['timing_error_per_sample']['p99_ms'])} ms",
            "every sample: its chunk's arrival minus its own intended time",
        ),
        (
            "drift over the run",
            f"{fmt(rt['drift_ms'])} ms",
            "median error, last 5 s minus first 5 s; fitted slope "
            f"{fmt(rt.get('drift_slope_ms_per_min'), 3)} ms/min",
        ),
        (
            "lost / duplicated / reordered",
            f"{rt['counter']['missing'] + rt['counter'].get('missing_at_end', 0)} / "
            f"{rt['counter']['duplicates']} / {rt['counter']['out_of_order']}",
            "real time; must be 0 / 0 / 0",
        ),
        (
            "timestamp error",
            f"{fmt(rt['stamp_error_ms_max'], 4)} ms",
            "replayed stamps vs recording spacing (max)",
        ),
    ]
    if "event_timing_error" in rt:
        ev = rt["event_timing_error"]
        rows.append(
            (
                "event timing error p50 / p99",
                f"{fmt(ev['p50_ms'])} / {fmt(ev['p99_ms'])} ms",
                f"{ev['n']} events",
            )
        )
    lsl = fig["through_lsl"]
    rows.append(
        (
            "through LSL: per-sample error p50 / p99",
            f"{fmt(lsl['timing_error_per_sample']['p50_ms'])} / "
            f"{fmt(lsl['timing_error_per_sample']['p99_ms'])} ms",
            f"`recall-lab replay --lsl` -> pylsl inlet; lost {lsl['counter']['missing']}, "
            f"not received at the end {lsl['counter']['missing_at_end']}",
        )
    )
    rows += [
        (
            "as fast as possible (source)",
            f"{fmt(fast['x_real_time'], 0)} x real time",
            f"sustained; cap {fast['speed_cap_x']:g} x; {fig['seconds']:g} s in "
            f"{fmt(fast['wall_s'])} s from start ({fmt(fast['x_real_time_including_start'], 0)} x)",
        ),
        (
            "as fast as possible (to a new file)",
            f"{fmt(to_file['x_real_time'], 0)} x real time",
            f"lost {to_file['counter']['missing'] + to_file['counter']['missing_at_end']}, "
            f"events {to_file['events_copied']}",
        ),
    ]
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="session length (default 60)")
    p.add_argument("--channels", type=int, default=64, help="channels (default 64)")
    p.add_argument("--rate", type=float, default=1000.0, help="sampling rate (default 1000)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR), help="where results are written")
    p.add_argument("--workdir", default=None, help="where the session files go (default: temp)")
    p.add_argument("--note", default="", help="note stored with the results (e.g. machine load)")
    args = p.parse_args(argv)
    if args.seconds < 1 or args.channels < 1 or args.rate <= 0:
        p.error("--seconds must be >= 1, --channels and --rate positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_replay_", dir=args.workdir) as tmp:
        path = Path(tmp) / f"replay-{uuid.uuid4().hex[:8]}.h5"
        machine = machine_info(args.note)
        print(
            f"replaying {args.seconds:g} s x {args.channels} ch x {args.rate:g} Hz ({path.name})",
            flush=True,
        )
        n_total = make_session(path, args.seconds, args.channels, args.rate)
        duration = (n_total - 1) / args.rate
        fig = {
            "seconds": args.seconds,
            "channels": args.channels,
            "rate_hz": args.rate,
            "real_time": real_time(path, n_total, args.rate, duration),
            "max_speed_source": as_fast_as_possible(path, n_total, args.rate, duration),
            "through_lsl": through_lsl(path, n_total, args.rate, duration),
            "max_speed_to_file": as_fast_as_possible_to_file(
                path, Path(tmp) / "copy.h5", n_total, duration
            ),
        }
    machine["load_average_1m_5m_end"] = list(machine_info()["load_average_1m_5m"])
    table = build_table(fig)
    title = f"Replay of a {args.seconds:g} s, {args.channels}-ch, {args.rate:g}-Hz session"
    print_table(title, table)
    out = update_results(
        AREA,
        SECTION,
        fig,
        table,
        title=title,
        summary=SUMMARY,
        machine=machine,
        results_dir=Path(args.results_dir),
    )
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    bad = [
        k
        for k in ("real_time", "through_lsl", "max_speed_source", "max_speed_to_file")
        if fig[k]["counter"]["missing"]
        or fig[k]["counter"]["duplicates"]
        or fig[k]["counter"]["out_of_order"]
        # Through LSL the inlet joins late (start) and the replay closes its outlet right
        # after the last push (end): both are reported in the table, not failures here.
        or (k != "through_lsl" and fig[k]["counter"].get("missing_at_start"))
        or (k != "through_lsl" and fig[k]["counter"].get("missing_at_end"))
    ]
    if bad:
        print(f"FAIL: samples lost, duplicated or reordered in: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
