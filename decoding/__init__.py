"""Offline affect decoding: preprocessing, labels, CEBRA and other decoders, honest evaluation.

Only :mod:`decoding.labels` is imported eagerly elsewhere; everything heavy (mne, torch, cebra)
is imported inside the functions that need it.
"""
