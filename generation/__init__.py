"""Offline affect-contextualized audiovisual generation.

A memory's description, sketch and guiding melody, plus its affect trajectory (reported with
valence keys, or decoded from EEG), become a synchronized reconstruction: per-segment prompts,
MusicGen-melody music, Stable Diffusion keyframes, and an MP4 that follows one segment timeline.

Nothing here imports torch, diffusers or transformers at module top; the heavy libraries load
inside the functions that need them.
"""
