"""Import keeps what the source says (issue 9): channel types, names, filters, maker, units.

Real recordings from ``../shared/data`` where they show the problem, and files written here the
way their formats' own tools write them: EDF through edfio, BrainVision through pybv (with a
BrainVision Recorder amplifier table added, as Recorder writes it), XDF chunk by chunk following
the XDF specification (https://github.com/sccn/xdf/wiki/Specifications).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from data_schema.importers import import_recording
from data_schema.reader import read_session
from data_schema.recordings import load_recording
from data_schema.summary import summarize_session
from data_schema.types import StreamInfo
from data_schema.validator import validate_session
from data_schema.writer import SessionWriter

MUSE = "muselsl2_sub-P001_ses-S001_eeg.xdf"


# ----------------------------------------------------------------------------- writers
def _chunk(tag: int, content: bytes) -> bytes:
    """One XDF chunk: 8-byte length (tag + content), tag, content."""
    body = struct.pack("<H", tag) + content
    return struct.pack("<BQ", 8, len(body)) + body


def write_xdf(path: Path, streams: list[dict]) -> Path:
    """A float32 XDF file: FileHeader, then per stream StreamHeader, Samples, ClockOffset and
    StreamFooter chunks (Samples and ClockOffset only for streams with samples)."""
    chunks = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for sid, s in enumerate(streams, 1):
        n = s["channels"]
        data = np.asarray(s["data"], dtype="<f4").reshape(-1, n)
        ts = np.asarray(s["timestamps"], dtype="<f8")
        header = (
            f'<?xml version="1.0"?><info><name>{s["name"]}</name><type>{s["type"]}</type>'
            f"<channel_count>{n}</channel_count><nominal_srate>{s['rate']}</nominal_srate>"
            f"<channel_format>float32</channel_format><source_id>test-{sid}</source_id>"
            f"<created_at>100</created_at><desc>{s.get('desc', '')}</desc></info>"
        )
        chunks.append(_chunk(2, struct.pack("<I", sid) + header.encode()))
        if len(ts):
            body = struct.pack("<I", sid) + struct.pack("<BQ", 8, len(ts))
            for row, t in zip(data, ts):
                body += struct.pack("<Bd", 8, t) + row.tobytes()
            chunks.append(_chunk(3, body))
            chunks.append(_chunk(4, struct.pack("<Idd", sid, float(ts[0]), 0.0)))
        first, last = (float(ts[0]), float(ts[-1])) if len(ts) else (0.0, 0.0)
        footer = (
            f'<?xml version="1.0"?><info><first_timestamp>{first}</first_timestamp>'
            f"<last_timestamp>{last}</last_timestamp><sample_count>{len(ts)}</sample_count>"
            "</info>"
        )
        chunks.append(_chunk(6, struct.pack("<I", sid) + footer.encode()))
    path.write_bytes(b"".join(chunks))
    return path


#: EEG Motor Movement/Imagery (EEGMMIDB) labels as its EDF files spell them, plus two
#: goniometer ("Ergo") channels in microvolts and a temperature channel.
EDF_LABELS = ["Fc5.", "Cz..", "Fp1.", "Fp2.", "Iz..", "Ergo-Left", "Ergo-Right", "Temp rectal"]


def write_edf(path: Path) -> Path:
    """1000 Hz EDF+ with prefiltering "HP:0.5Hz LP:250Hz" on every channel (edfio)."""
    from edfio import Edf, EdfSignal

    rng = np.random.default_rng(9)
    signals = []
    for label in EDF_LABELS:
        temp = label.startswith("Temp")
        data = 37 + rng.normal(0, 0.1, 2000) if temp else rng.normal(0, 40, 2000)
        signals.append(
            EdfSignal(
                data,
                1000,
                label=label,
                physical_dimension="degC" if temp else "uV",
                physical_range=(30, 45) if temp else (-500, 500),
                prefiltering="HP:0.5Hz LP:250Hz",
            )
        )
    Edf(signals).write(path)
    return path


BV_CHANNELS = ["Fp1", "Fp2", "Cz", "GSR", "Temp"]


def write_brainvision(folder: Path, *, recorder: bool) -> Path:
    """BrainVision through pybv (voltages only), then a GSR channel in µS, a temperature in C
    and, with ``recorder``, the amplifier table BrainVision Recorder writes (low cutoff 10 s
    time constant, high cutoff 250 Hz)."""
    import pybv

    # pybv takes volts and stores value / (0.1 µV): 10, 20, 30, 50, 370 in the .eeg file.
    data = np.tile(np.array([[1e-6], [2e-6], [3e-6], [5e-6], [3.7e-5]]), (1, 1000))
    pybv.write_brainvision(
        data=data,
        sfreq=1000,
        ch_names=BV_CHANNELS,
        fname_base="rec",
        folder_out=str(folder),
        unit="µV",
    )
    vhdr = folder / "rec.vhdr"
    text = vhdr.read_text(encoding="utf-8")
    text = text.replace("Ch4=GSR,,0.1,µV", "Ch4=GSR,,0.1,µS").replace(
        "Ch5=Temp,,0.1,µV", "Ch5=Temp,,0.1,C"
    )
    if recorder:
        text = text.replace("; Written using pybv", "; Data created by the Vision Recorder\n;")
        rows = [
            f"{i:<6}{name:<10}{i:<14}0.1 {unit:<15}10               250              Off"
            for i, (name, unit) in enumerate(zip(BV_CHANNELS, ["µV"] * 3 + ["µS", "C"]), 1)
        ]
        text += (
            "\nA m p l i f i e r  S e t u p\n============================\n"
            "Number of channels: 5\nSampling Rate [Hz]: 1000\nSampling Interval [µS]: 1000\n\n"
            "Channels\n--------\n"
            "#     Name      Phys. Chn.    Resolution / Unit   Low Cutoff [s]   "
            "High Cutoff [Hz]   Notch [Hz]\n" + "\n".join(rows) + "\n"
        )
    vhdr.write_text(text, encoding="utf-8")
    return vhdr


# ----------------------------------------------------------------------------- item 10: types
def test_muse_aux_channel_is_not_eeg_and_the_change_is_recorded(shared_data: Path) -> None:
    eeg = load_recording(shared_data / MUSE).streams["eeg"]
    assert eeg.info.channel_names == ["TP9", "AF7", "AF8", "TP10", "AUX_RIGHT"]
    assert eeg.info.channel_types == ["eeg", "eeg", "eeg", "eeg", "misc"]
    assert eeg.info.units == ["uV"] * 5  # the unit stays what the file says
    desc = eeg.info.description
    assert desc["original_channel_names"] == eeg.info.channel_names
    assert desc["channel_typing"] == ["AUX_RIGHT: eeg -> misc (auxiliary input, by name)"]
    assert desc["manufacturer"] == "Interaxon"  # the LSL desc says "Muse", Interaxon's product


def test_edf_names_are_standardised_and_non_eeg_channels_typed(tmp_path: Path) -> None:
    path = write_edf(tmp_path / "S001R01.edf")
    out = tmp_path / "s.h5"
    import_recording(path, out, participant_id="P001")
    eeg = read_session(out).streams["eeg"]
    assert eeg.info.channel_names == [
        "FC5",
        "Cz",
        "Fp1",
        "Fp2",
        "Iz",
        "Ergo-Left",
        "Ergo-Right",
        "Temp rectal",
    ]
    assert eeg.info.channel_types == ["eeg"] * 5 + ["misc", "misc", "temperature"]
    assert eeg.info.units == ["V"] * 7 + ["degC"]
    desc = eeg.info.description
    assert desc["original_channel_names"] == EDF_LABELS
    assert "Fc5. -> FC5 (10-05 spelling)" in desc["channel_typing"]
    assert any(n.startswith("Ergo-Left: eeg -> misc") for n in desc["channel_typing"])
    # The standard montage now places every EEG channel (the blink proxies Fp1/Fp2 included).
    import mne

    raw = read_session(out).to_raw().pick("eeg")
    raw.set_montage(mne.channels.make_standard_montage("colin27_1005"), on_missing="raise")
    assert {"Fp1", "Fp2"} <= set(raw.ch_names)


def test_cli_import_says_what_it_did_to_the_channels(
    shared_data: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "muse.h5"
    assert (
        main(["import", str(shared_data / MUSE), "--out", str(out), "--participant", "P001"]) == 0
    )
    assert "channels of eeg: AUX_RIGHT: eeg -> misc" in capsys.readouterr().out


# ----------------------------------------------------------------------------- item 11
def test_xdf_eeg_is_the_stream_with_samples_not_an_empty_one(tmp_path: Path) -> None:
    data = np.arange(400, dtype=np.float32).reshape(100, 4)
    path = write_xdf(
        tmp_path / "two-amps.xdf",
        [
            {
                "name": "Idle",
                "type": "EEG",
                "channels": 4,
                "rate": 250,
                "data": [],
                "timestamps": [],
            },
            {
                "name": "Amp",
                "type": "EEG",
                "channels": 4,
                "rate": 250,
                "data": data,
                "timestamps": 10 + np.arange(100) / 250,
            },
        ],
    )
    session = load_recording(path)
    eeg = session.streams["eeg"]
    assert eeg.info.description["lsl_name"] == "Amp"
    np.testing.assert_array_equal(eeg.data, data)
    assert session.streams["Idle-EEG"].n_samples == 0  # the empty one is still kept


def _gapped_session(path: Path, true_rate: float, nominal: float) -> Path:
    with SessionWriter(path, participant_id="P001") as w:
        w.add_stream("eeg", StreamInfo("eeg", ["Cz"], ["eeg"], ["uV"], nominal))
        ts = 50 + np.arange(3000) / true_rate
        ts[1500:] += 20.0  # the amplifier dropped out for 20 s
        w.append("eeg", np.zeros((3000, 1)), ts)
    return path


def test_info_measures_the_rate_outside_gaps_like_validate(tmp_path: Path) -> None:
    good = summarize_session(_gapped_session(tmp_path / "good.h5", 250.0, 250.0))
    (stream,) = good.streams
    assert stream.gaps == 1
    assert abs(stream.measured_rate - 250.0) < 1e-6
    assert not [p for p in validate_session(tmp_path / "good.h5") if "arrive at" in p.what]
    # A device that really runs slow: both report the same rate.
    slow_path = _gapped_session(tmp_path / "slow.h5", 230.0, 250.0)
    (slow,) = summarize_session(slow_path).streams
    (warning,) = [p for p in validate_session(slow_path) if "arrive at" in p.what]
    assert f"samples arrive at {slow.measured_rate:.4g} Hz" in warning.what
    assert abs(slow.measured_rate - 230.0) < 1e-6


def test_import_without_participant_is_refused(tmp_path: Path, shared_data: Path, capsys) -> None:
    out = tmp_path / "o.h5"
    code = main(["import", str(shared_data / MUSE), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "--participant is required" in err
    assert "e.g. --participant P001" in err
    assert not out.exists()
    with pytest.raises(TypeError):
        import_recording(shared_data / MUSE, out)  # type: ignore[call-arg]


# ----------------------------------------------------------------------------- item 9: import
def test_edf_prefiltering_is_kept(tmp_path: Path) -> None:
    desc = load_recording(write_edf(tmp_path / "f.edf")).streams["eeg"].info.description
    assert desc["filters"] == {"highpass": 0.5, "lowpass": 250.0}
    assert desc["manufacturer"] is None  # an EDF header does not name the maker


def test_brainvision_filters_units_and_maker(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    vhdr = write_brainvision(tmp_path / "a", recorder=True)
    out = tmp_path / "bv.h5"
    import_recording(vhdr, out, participant_id="P001")
    eeg = read_session(out).streams["eeg"]
    assert eeg.info.units == ["V", "V", "V", "S", "C"]
    assert eeg.info.channel_types == ["eeg", "eeg", "eeg", "gsr", "temperature"]
    np.testing.assert_allclose(eeg.data[0], [1e-6, 2e-6, 3e-6, 5e-6, 37.0], rtol=1e-5)
    desc = eeg.info.description
    assert desc["filters"]["lowpass"] == 250.0
    assert abs(desc["filters"]["highpass"] - 1 / (2 * np.pi * 10)) < 1e-9  # 10 s time constant
    assert desc["manufacturer"] == "Brain Products"
    # A header that does not say who made the amplifier (pybv's own) states no maker or filter.
    (tmp_path / "b").mkdir()
    plain = load_recording(write_brainvision(tmp_path / "b", recorder=False)).streams["eeg"]
    assert plain.info.description["manufacturer"] is None
    assert plain.info.description["filters"] == {"highpass": None, "lowpass": None}
    assert plain.info.units == ["V", "V", "V", "S", "C"]


def test_xdf_desc_filters_and_maker_are_kept(tmp_path: Path) -> None:
    desc_xml = (
        "<manufacturer>Brain Products</manufacturer>"
        "<filtering><highpass>0.1</highpass><lowpass>100</lowpass></filtering>"
        "<channels><channel><label>Fp1</label><unit>microvolts</unit><type>EEG</type></channel>"
        "<channel><label>EDA</label><unit>microsiemens</unit><type>EEG</type></channel>"
        "</channels>"
    )
    path = write_xdf(
        tmp_path / "amp.xdf",
        [
            {
                "name": "Amp",
                "type": "EEG",
                "channels": 2,
                "rate": 500,
                "data": np.zeros((50, 2)),
                "timestamps": 5 + np.arange(50) / 500,
                "desc": desc_xml,
            }
        ],
    )
    eeg = load_recording(path).streams["eeg"]
    assert eeg.info.description["filters"] == {"highpass": 0.1, "lowpass": 100.0}
    assert eeg.info.description["manufacturer"] == "Brain Products"
    assert eeg.info.units == ["uV", "microsiemens"]
    assert eeg.info.channel_types == ["eeg", "misc"]
