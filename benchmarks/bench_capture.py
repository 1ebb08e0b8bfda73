"""Benchmark: the camera and the microphone beside the EEG (``recall-lab record --camera``).

Two recordings of ``--seconds`` (default 30), one after the other, each by
``recall-lab record --source synthetic --duration SECONDS`` in its own process:

- **capture**: with ``--camera file:VIDEO --microphone default``. The video is FFmpeg's
  ``testsrc2`` at 640x480, 30 fps (H.264), with each frame's index drawn into its top-left
  corner as a 16-bit barcode of black and white squares (and the complement of every bit below
  it), so every stored JPEG says which frame it is. The microphone is a real ALSA capture device
  given to PortAudio through a temporary HOME with an ``.asoundrc`` (as ``tests/test_capture.py``
  does): its ``file`` PCM reads a FIFO that this script fills at real time with a 16-kHz sample
  counter (mod 65536), logging when each sample was due;
- **EEG only**: the same command without camera and microphone, the peer for CPU.

Figures: frames expected against stored; dropped frames (the camera's own count, from the
command's output and from the file's ``samples_lost`` events); frame continuity read back from
the stored JPEGs (missing, duplicated, out of order); frame timestamp spacing; video timing error
(timestamp minus the time the frame was due: playback start + index / fps); audio samples
against expected, their continuity and timing (from the counter); file size per minute; the
recorder process's CPU (user + system, all threads, as ``bench_record.py`` measures it) with and
without capture, and their ratio. Exit status 1 if a frame is missing, duplicated, reordered,
unreadable or dropped, or a recording failed.

A real webcam's timing (V4L2 buffer timestamps) is not measured: there is no camera here.

Run ``python benchmarks/bench_capture.py`` or ``--seconds 5`` for a quick look.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import (
    REPO,
    RESULTS_DIR,
    ProcessMonitor,
    counter_check,
    fmt,
    machine_info,
    percentiles_ms,
    print_table,
    update_results,
)

AREA = "capture"
SECTION = "record"
FFMPEG = "/usr/bin/ffmpeg"
CLI = [sys.executable, "-m", "app.cli"]
WIDTH, HEIGHT, FPS = 640, 480, 30
RATE = 16000  # microphone samples per second
WARMUP = 1.0  # seconds after the file appears before CPU is counted
START_TIMEOUT = 60.0

# The barcode: BITS squares of SQ pixels, COLS to a row, the index's bits in the first rows and
# their complements in as many rows below (a square that does not read as the opposite of its
# partner makes the frame "unreadable" rather than misread).
BITS, SQ, COLS, PAD = 16, 16, 8, 8
ROWS = BITS // COLS

# --------------------------------------------------------------------------- the microphone
# (from tests/test_capture.py: an ALSA capture device that reads a FIFO)
ASOUNDRC = """
pcm.!default {{
    type asym
    playback.pcm "nullout"
    capture.pcm "mic"
}}
pcm.nullout {{ type null }}
pcm.mic {{
    type plug
    slave {{
        pcm {{
            type file
            slave.pcm "null"
            file "/dev/null"
            infile "{infile}"
            format "raw"
        }}
        format S16_LE
        rate {rate}
        channels 1
    }}
}}
"""

# How many frames PortAudio asks the device for at a time (its ALSA period): the FIFO is fed
# in blocks of exactly that size, so every read finds a whole block.
PERIOD_PROBE = f"""
import sounddevice as sd, time
sizes = []
with sd.InputStream(samplerate={RATE}, channels=1, dtype="float32",
                    callback=lambda d, n, t, s: sizes.append(n)):
    time.sleep(0.2)
print(sizes[5])
"""


def make_mic_home(home: Path) -> Path:
    """A HOME whose ALSA default capture device reads ``home/mic.fifo`` (fed by :func:`feed`)."""
    home.mkdir(parents=True, exist_ok=True)
    probe = home / "probe.raw"
    np.zeros(RATE * 5, "<i2").tofile(probe)
    (home / ".asoundrc").write_text(ASOUNDRC.format(infile=probe, rate=RATE))
    r = subprocess.run(
        [sys.executable, "-c", PERIOD_PROBE],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode != 0:
        raise RuntimeError("the ALSA FIFO device does not open:\n" + r.stderr[-2000:])
    (home / "period").write_text(r.stdout.strip())
    fifo = home / "mic.fifo"
    os.mkfifo(fifo)
    (home / ".asoundrc").write_text(ASOUNDRC.format(infile=fifo, rate=RATE))
    return home


@contextmanager
def feed(home: Path):
    """Feed the FIFO with a sample counter at real time while the block runs.

    Sample ``k`` has the value ``k mod 65536`` (as int16, shifted by -32768) and is due at
    ``t0 + k / RATE`` on ``CLOCK_MONOTONIC``; a block of one ALSA period is written when its
    last sample is due. PortAudio opens the device more than once
    (listing devices, then the stream); each reader gets the counter from where the last one
    left it, with a new ``t0``. Yields the list of ``(k, t0)`` at each opening.
    """
    fifo = home / "mic.fifo"
    block = int((home / "period").read_text())
    stop = threading.Event()
    segments: list[tuple[int, float]] = []

    def run() -> None:
        k = 0
        while not stop.is_set():
            fd = os.open(fifo, os.O_WRONLY)  # waits for a reader
            t0 = time.monotonic() - k / RATE
            segments.append((k, t0))
            try:
                while not stop.is_set():
                    # A block exists once its last sample is due, as a microphone's would.
                    wait = t0 + (k + block) / RATE - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    x = (np.arange(k, k + block) % 65536 - 32768).astype("<i2")
                    os.write(fd, x.tobytes())
                    k += block
            except BrokenPipeError:
                pass
            finally:
                os.close(fd)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield segments
    finally:
        stop.set()
        try:  # a feeder waiting for a reader in open() is let go
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            pass
        t.join(5)


# --------------------------------------------------------------------------- the video
def _square(bit: int, complement: bool) -> tuple[int, int]:
    row = bit // COLS + (ROWS if complement else 0)
    return PAD + (bit % COLS) * SQ, PAD + row * SQ


def barcode_filter() -> str:
    """FFmpeg ``drawbox`` filters that draw each frame's index ``n`` as squares."""
    w, h = COLS * SQ + 2 * PAD, 2 * ROWS * SQ + 2 * PAD
    parts = [f"drawbox=x=0:y=0:w={w}:h={h}:color=black:t=fill"]
    for b in range(BITS):
        bit = f"mod(trunc(n/{2**b}),2)"
        for complement, expr in ((False, bit), (True, f"1-{bit}")):
            x, y = _square(b, complement)
            parts.append(f"drawbox=x={x}:y={y}:w={SQ}:h={SQ}:color=white:t=fill:enable='{expr}'")
    return ",".join(parts)


def make_video(path: Path, seconds: float) -> None:
    subprocess.run(
        [
            FFMPEG,
            *("-v", "error", "-y", "-f", "lavfi"),
            *("-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}"),
            *("-t", f"{seconds:g}", "-vf", barcode_filter()),
            *("-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)),
        ],
        check=True,
        timeout=600,
    )


def read_index(jpeg: bytes) -> int | None:
    """The frame index drawn into a JPEG, or ``None`` if a square does not read clearly."""
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"), dtype=np.float32)
    m = SQ // 4  # the centre of each square, away from the edges JPEG blurs

    def level(bit: int, complement: bool) -> float:
        x, y = _square(bit, complement)
        return float(grey[y + m : y + SQ - m, x + m : x + SQ - m].mean())

    index = 0
    for b in range(BITS):
        on, off = level(b, False) > 128, level(b, True) > 128
        if on == off:
            return None
        index |= int(on) << b
    return index


# --------------------------------------------------------------------------- one recording
def record(
    home: Path, out: Path, seconds: float, devices: list[str], log_dir: Path
) -> tuple[dict, str]:
    """Run ``recall-lab record`` for ``seconds``; its CPU between WARMUP and the end."""
    env = {**os.environ, "HOME": str(home)}
    cmd = [*CLI, "record", "--source", "synthetic", "--quiet", "--duration", f"{seconds:g}"]
    stdout_path, stderr_path = log_dir / f"{out.stem}.out", log_dir / f"{out.stem}.err"
    with open(stdout_path, "w") as so, open(stderr_path, "w") as se:
        t_launch = time.monotonic()
        proc = subprocess.Popen(
            [*cmd, *devices, "--out", str(out)], cwd=REPO, env=env, stdout=so, stderr=se
        )
        try:
            mon = ProcessMonitor(proc.pid, out.stem).start()
            deadline = time.monotonic() + START_TIMEOUT
            while not out.exists():  # the file is made just before the recording starts
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the recorder did not start:\n{stderr_path.read_text()[-3000:]}"
                    )
                time.sleep(0.01)
            t_file = time.monotonic()
            time.sleep(min(WARMUP, seconds / 3))
            mon.mark("go")
            time.sleep(max(0.0, t_file + seconds - 0.25 - time.monotonic()))
            mon.mark("done")
            # os.wait4 gives the CPU of the whole process life (imports and opening included).
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            t_exit = time.monotonic()
            mon.stop()
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
    output = stdout_path.read_text() + stderr_path.read_text()
    fig = {
        "exit_code": proc.returncode,
        "cpu": mon.cpu_between("go", "done"),
        "cpu_s_whole_process": round(usage.ru_utime + usage.ru_stime, 3),
        "wall_s_whole_process": round(t_exit - t_launch, 3),
        "start_up_s": round(t_file - t_launch, 3),
        "peak_rss_mb": round(mon.peak_rss / 2**20, 1),
        "file_mb": round(out.stat().st_size / 1e6, 3) if out.exists() else None,
        "file_appeared_monotonic": t_file,
    }
    fig["file_mb_per_min"] = round(fig["file_mb"] * 60 / seconds, 2) if fig["file_mb"] else None
    return fig, output


# --------------------------------------------------------------------------- analysis
def analyse_video(session, output: str, seconds: float, t_file: float) -> dict:
    """``t_file``: LSL time the session file appeared (the recording starts right after)."""
    v = session.videos["video"]
    ts = v.timestamps
    indices: list[int] = []
    unreadable = 0
    jpeg_bytes = 0
    for a in range(0, v.n_frames, 300):  # a few hundred JPEGs in memory at a time
        for jpeg in v.jpegs(a, min(a + 300, v.n_frames)):
            jpeg_bytes += len(jpeg)
            k = read_index(jpeg)
            if k is None:
                unreadable += 1
                indices.append(-1)
            else:
                indices.append(k)
    idx = np.array(indices, dtype=np.int64)
    good = idx >= 0
    cont = counter_check(idx[good], expected=int(idx[good].max()) + 1 if good.any() else 0)
    period = 1.0 / FPS
    # Playback start on the LSL clock, from the first frame read: frame k was due at
    # start + k / fps (the file's presentation times; the video is constant-rate).
    first = int(np.argmax(good))
    start = ts[first] - idx[first] / FPS
    error = ts[good] - (start + idx[good] / FPS)
    spacing = np.abs(np.diff(ts) - period)
    m = re.search(r"(\d+) video frames \(dropped (\d+)\)", output)
    lost_events = [
        e for e in session.events_where(source="recorder", label="samples_lost") if e.value
    ]
    dropped_file = sum(
        int(e.value.split(":")[1]) for e in lost_events if e.value.startswith("video:")
    )
    eeg = session.eeg.timestamps
    due_before_eeg_end = int(np.floor((eeg[-1] - start) * FPS)) + 1
    return {
        "width": v.width,
        "height": v.height,
        "nominal_rate": v.nominal_rate,
        "clock_from": v.clock_mapping.get("from"),
        "frames_stored": v.n_frames,
        "frames_expected_index_range": cont["pushed"],
        "frames_expected_nominal": round(seconds * FPS),
        "frames_due_before_last_eeg_sample": due_before_eeg_end,
        "frames_reported_by_record": int(m.group(1)) if m else None,
        "dropped_reported_by_record": int(m.group(2)) if m else None,
        "dropped_in_file": dropped_file,
        "unreadable_barcodes": unreadable,
        "continuity": cont,
        "spacing_error": percentiles_ms(spacing),
        "timing_error_abs": percentiles_ms(np.abs(error)),
        "timing_error_mean_ms": round(float(np.mean(error)) * 1e3, 6) if error.size else None,
        "camera_start_minus_eeg_start_ms": round((start - eeg[0]) * 1e3, 1),
        "last_frame_minus_last_eeg_sample_ms": round((ts[-1] - eeg[-1]) * 1e3, 1),
        "playback_start_after_file_ms": round((start - t_file) * 1e3, 1),
        "eeg_first_sample_after_file_ms": round((eeg[0] - t_file) * 1e3, 1),
        "span_s": round(float(ts[-1] - ts[0] + 1 / FPS), 3),
        "eeg_span_s": round(float(eeg[-1] - eeg[0]), 3),
        "eeg_samples": int(session.eeg.n_samples),
        "jpeg_kb_per_frame": round(jpeg_bytes / max(1, v.n_frames) / 1e3, 1),
        "video_mb_per_min": round(jpeg_bytes / 1e6 * 60 / (v.n_frames / FPS), 1)
        if v.n_frames
        else None,
    }


def lsl_minus_monotonic() -> float:
    """LSL's clock minus ``CLOCK_MONOTONIC`` (0 on Linux, measured anyway)."""
    import pylsl

    d = []
    for _ in range(15):
        a = time.monotonic()
        t = pylsl.local_clock()
        b = time.monotonic()
        d.append(t - (a + b) / 2)
    return float(np.median(d))


def analyse_audio(session, segments: list[tuple[int, float]], offset: float, t_file: float) -> dict:
    a = session.streams["audio"]
    x, ts = a.data[:, 0].astype(np.float64), a.timestamps
    # The counter mod 65536, and the sample number it stands for: the one whose due time is
    # nearest the sample's timestamp (a timing error under 2 s keeps this unambiguous).
    v = (np.rint(x * 32768).astype(np.int64) + 32768) % 65536
    mono = ts - offset
    seg_k = np.array([k for k, _ in segments], dtype=np.int64)
    seg_t0 = np.array([t0 for _, t0 in segments])
    starts = seg_t0 + seg_k / RATE  # when each opening began, CLOCK_MONOTONIC
    s = np.clip(np.searchsorted(starts, mono, side="right") - 1, 0, len(segments) - 1)
    k_est = (mono - seg_t0[s]) * RATE
    k = v + 65536 * np.rint((k_est - v) / 65536).astype(np.int64)
    s_k = np.clip(np.searchsorted(seg_k, k, side="right") - 1, 0, len(segments) - 1)
    error = mono - (seg_t0[s_k] + k / RATE)
    cont = counter_check(k)
    after = ts >= ts[0] + 0.25
    cont_after = counter_check(k[after])
    span = ts[-1] - ts[0]
    return {
        "rate": RATE,
        "samples_stored": int(a.n_samples),
        "samples_expected_from_timestamps": round(span * RATE) + 1,
        "samples_expected_from_counter": int(k.max() - k.min() + 1),
        "timestamp_rate_hz": round((a.n_samples - 1) / span, 2) if span > 0 else None,
        "continuity": cont,
        "continuity_after_first_quarter_second": cont_after,
        "timing_error_abs": percentiles_ms(np.abs(error)),
        "timing_error_median_ms": round(float(np.median(error)) * 1e3, 3),
        "device_openings": len(segments),
        "audio_start_minus_eeg_start_ms": round((ts[0] - session.eeg.timestamps[0]) * 1e3, 1),
        "audio_end_minus_eeg_end_ms": round((ts[-1] - session.eeg.timestamps[-1]) * 1e3, 1),
        "first_sample_after_file_ms": round((ts[0] - t_file) * 1e3, 1),
        "span_s": round(float(span + 1 / RATE), 3),
    }


# --------------------------------------------------------------------------- controller
def controller(args: argparse.Namespace) -> int:
    from data_schema.reader import read_session

    if not Path(FFMPEG).exists():
        print(f"{FFMPEG} not found: the benchmark makes its test video with FFmpeg")
        return 2
    machine = machine_info(args.note)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_capture_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        video = work / "barcode.mp4"
        t = time.monotonic()
        make_video(video, args.seconds + 5)  # longer than the recording: it never runs out
        print(f"made {video.name} ({time.monotonic() - t:.1f} s)", flush=True)
        home = make_mic_home(work / "home")
        offset = lsl_minus_monotonic()
        eeg_only, out_plain = record(home, work / "eeg_only.h5", args.seconds, [], work)
        print(f"EEG only: {out_plain.strip().splitlines()[-1]}", flush=True)
        devices = ["--camera", f"file:{video}", "--microphone", "default"]
        with feed(home) as segments:
            capture, out_cap = record(home, work / "capture.h5", args.seconds, devices, work)
        print(f"capture:  {out_cap.strip().splitlines()[-1]}", flush=True)
        for name, rec, text in (("EEG only", eeg_only, out_plain), ("capture", capture, out_cap)):
            if rec["exit_code"] != 0:
                print(f"FAIL: the {name} recording exited {rec['exit_code']}:\n{text[-3000:]}")
                return 1
        session = read_session(work / "capture.h5")
        t_file = capture.pop("file_appeared_monotonic") + offset
        eeg_only.pop("file_appeared_monotonic")
        fig: dict = {
            "seconds": args.seconds,
            "video": analyse_video(session, out_cap, args.seconds, t_file),
            "audio": analyse_audio(session, list(segments), offset, t_file),
            "capture": capture,
            "eeg_only": eeg_only,
            "clean_close": session.clean_close,
        }
        m = re.search(r"lost (\d+) samples", out_cap)
        fig["lost_samples_reported_by_record"] = int(m.group(1)) if m else None
        c0 = eeg_only["cpu"]["cpu_fraction_of_one_core"]
        c1 = capture["cpu"]["cpu_fraction_of_one_core"]
        fig["cpu_ratio_capture_to_eeg_only"] = round(c1 / c0, 2) if c0 > 0 else None
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    machine["load_average_1m_5m_end"] = list(machine_info()["load_average_1m_5m"])
    vid = fig["video"]
    c = vid["continuity"]
    ok = (
        c["missing"] == c["duplicates"] == c["out_of_order"] == 0
        and c["missing_at_start"] == 0
        and vid["unreadable_barcodes"] == 0
        and vid["dropped_reported_by_record"] == 0
        and vid["dropped_in_file"] == 0
        and fig["clean_close"]
    )
    fig["ok"] = ok
    table = build_table(fig)
    title = (
        f"Recording {WIDTH}x{HEIGHT} {FPS} fps video and {RATE // 1000} kHz audio beside the EEG "
        f"for {args.seconds:g} s: frames, timing, size, CPU against EEG only"
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
    if not ok:
        print("FAIL: frames were lost, duplicated, reordered or unreadable", file=sys.stderr)
    return 0 if ok else 1


SUMMARY = (
    "`recall-lab record --source synthetic --camera file:VIDEO --microphone default` in its own "
    "process, then the same command without camera and microphone (the peer for CPU). The "
    "video is FFmpeg's `testsrc2` (640x480, 30 fps, H.264) with each frame's index drawn as a "
    "16-bit barcode (and its complement), read back from every stored JPEG. The microphone is a "
    "real ALSA capture device (PortAudio, through a temporary `.asoundrc`) whose `file` PCM "
    "reads a FIFO fed at real time with a 16-kHz sample counter. CPU is user + system time of "
    "the recorder process (all threads) from 1 s after the session file appears until 0.25 s "
    "before the recording ends, divided by that wall time (1.0 = one core). Not measured: a "
    "real webcam's timing (V4L2 buffer timestamps: the driver's capture time, after the "
    "exposure); there is no camera on this machine, so the video timing error below checks the "
    "recorder's own stamping of a file played as if live (each frame stamped with the time it "
    "was due, by construction), not a camera's latency."
)


def build_table(fig: dict) -> list[tuple[str, str, str]]:
    v, a, cap, plain = fig["video"], fig["audio"], fig["capture"], fig["eeg_only"]
    c, ac, aca = v["continuity"], a["continuity"], a["continuity_after_first_quarter_second"]
    return [
        (
            "frames stored / expected",
            f"{v['frames_stored']} / {v['frames_expected_index_range']}",
            "expected: every frame due from the start of playback (index 0) to the last stored "
            f"one; {v['frames_expected_nominal']} = seconds x fps, "
            f"{v['frames_due_before_last_eeg_sample']} due up to the last EEG sample",
        ),
        (
            "frames dropped",
            f"{v['dropped_reported_by_record']} / {v['dropped_in_file']}",
            "the camera's own count (frames pushed out of its bounded queue), as `record` "
            "prints it / as the file's `samples_lost` events say; must be 0 / 0",
        ),
        (
            "missing / duplicated / out of order",
            f"{c['missing'] + c['missing_at_start']} / {c['duplicates']} / {c['out_of_order']}",
            "from the frame index read back from every stored JPEG's barcode; must be 0 / 0 / 0",
        ),
        (
            "unreadable barcodes",
            f"{v['unreadable_barcodes']}",
            "frames whose 16 squares did not each read as the opposite of their complement",
        ),
        (
            "frame spacing error p50 / p99",
            f"{fmt(v['spacing_error']['p50_ms'], 4)} / {fmt(v['spacing_error']['p99_ms'], 4)} ms",
            "absolute difference between consecutive timestamps and 1/30 s",
        ),
        (
            "video timing error p50 / p99",
            f"{fmt(v['timing_error_abs']['p50_ms'], 4)} / "
            f"{fmt(v['timing_error_abs']['p99_ms'], 4)} ms",
            "absolute value of frame timestamp - (playback start + index / fps), index read "
            "from the JPEG: the file camera's stamping (a frame's stamp is its due time by "
            "design), not a camera's",
        ),
        (
            "first EEG / video / audio after the file",
            f"{fmt(v['eeg_first_sample_after_file_ms'], 0)} / "
            f"{fmt(v['playback_start_after_file_ms'], 0)} / "
            f"{fmt(a['first_sample_after_file_ms'], 0)} ms",
            "timestamp of the first EEG sample / of frame 0 / of the first audio sample minus "
            "the time the session file appeared (the recording starts right after), one clock",
        ),
        (
            "spans EEG / video / audio",
            f"{fmt(v['eeg_span_s'], 2)} / {fmt(v['span_s'], 2)} / {fmt(a['span_s'], 2)} s",
            f"first to last timestamp of each stream in the {fig['seconds']:g}-s recording "
            f"({v['eeg_samples']} EEG samples)",
        ),
        (
            "last video frame / last audio sample minus last EEG sample",
            f"{fmt(v['last_frame_minus_last_eeg_sample_ms'], 1)} / "
            f"{fmt(a['audio_end_minus_eeg_end_ms'], 1)} ms",
            "the streams end together: at the stop each source takes what its device holds up "
            "to that moment (`record` pulls only every 0.5 s), and the camera keeps no later "
            "frame; one video frame is 33.3 ms",
        ),
        (
            "audio samples stored / expected",
            f"{a['samples_stored']} / {a['samples_expected_from_timestamps']}",
            f"expected: {RATE} Hz x the span of the audio timestamps (their rate: "
            f"{fmt(a['timestamp_rate_hz'], 1)} Hz); "
            f"{a['samples_expected_from_counter']} from the counter's range",
        ),
        (
            "audio missing / duplicated",
            f"{ac['missing']} / {ac['duplicates']} ({aca['missing']} / {aca['duplicates']} "
            "after 0.25 s)",
            "from the sample counter fed into the device (its first reads may repeat a block); "
            f"the file marks {fig['lost_samples_reported_by_record']} lost samples (`record`'s "
            "count: its own queue, not the device's overruns)",
        ),
        (
            "audio timing error p50 / p99",
            f"{fmt(a['timing_error_abs']['p50_ms'], 1)} / "
            f"{fmt(a['timing_error_abs']['p99_ms'], 1)} ms",
            f"absolute value of sample timestamp - time it was due at the FIFO (median signed "
            f"{fmt(a['timing_error_median_ms'], 1)} ms): PortAudio's capture time through "
            "ALSA's file plugin, mapped to LSL and smoothed; samples lost without a mark move the "
            "stamps (the smoothing fits one line over the stored samples)",
        ),
        (
            "file size",
            f"{fmt(cap['file_mb'], 1)} MB, {fmt(cap['file_mb_per_min'], 1)} MB/min",
            f"video {fmt(v['video_mb_per_min'], 1)} MB/min ({fmt(v['jpeg_kb_per_frame'], 1)} kB "
            f"a JPEG frame, quality 85); EEG only {fmt(plain['file_mb_per_min'], 1)} MB/min",
        ),
        (
            "CPU with capture",
            f"{fmt(cap['cpu']['cpu_fraction_of_one_core'] * 100, 1)} %",
            "of one core: decoding H.264, RGB conversion, JPEG encoding, audio, EEG, writing",
        ),
        (
            "CPU EEG only",
            f"{fmt(plain['cpu']['cpu_fraction_of_one_core'] * 100, 1)} %",
            "of one core, the same command without camera and microphone, same run",
        ),
        (
            "CPU ratio capture / EEG only",
            fmt(fig["cpu_ratio_capture_to_eeg_only"], 1),
            "the figure to compare across machines",
        ),
        (
            "whole process CPU with / without capture",
            f"{fmt(cap['cpu_s_whole_process'], 1)} / {fmt(plain['cpu_s_whole_process'], 1)} s",
            f"start to exit (imports, opening devices, closing), over "
            f"{fmt(cap['wall_s_whole_process'], 1)} / {fmt(plain['wall_s_whole_process'], 1)} s",
        ),
        (
            "peak RSS with / without capture",
            f"{fmt(cap['peak_rss_mb'], 0)} / {fmt(plain['peak_rss_mb'], 0)} MB",
            "kernel high-water mark of the recorder process",
        ),
    ]


# --------------------------------------------------------------------------- entry point
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="each recording (default 30)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR), help="where results are written")
    p.add_argument("--workdir", default=None, help="where the recordings go (default: temp)")
    p.add_argument("--keep", action="store_true", help="keep the video and the recordings")
    p.add_argument("--note", default="", help="note stored with the results (e.g. machine load)")
    args = p.parse_args(argv)
    if not 2 <= args.seconds <= 1800:  # 16-bit frame index
        p.error("--seconds: give 2 to 1800 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    return controller(parse_args(argv))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
