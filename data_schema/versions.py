"""Versions of the software that wrote a file, recorded in every session file and result."""

from __future__ import annotations

from importlib import metadata

_PACKAGES = (
    "recall-lab",
    "numpy",
    "h5py",
    "scipy",
    "mne",
    "brainflow",
    "pylsl",
    "pyxdf",
    "torch",
    "cebra",
    "scikit-learn",
    "diffusers",
    "transformers",
)


def software_version() -> str:
    """The installed recall-lab version."""
    try:
        return metadata.version("recall-lab")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def software_versions() -> dict[str, str]:
    """Versions of recall-lab and the libraries it uses that are installed (no imports)."""
    out: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    import h5py

    out["hdf5"] = h5py.version.hdf5_version
    return out
