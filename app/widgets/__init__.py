"""Reusable Qt widgets of the console and the participant display."""
