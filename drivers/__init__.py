"""Live sources (BrainFlow boards, LSL inlets, replay of files) and LSL outlets.

Every source delivers samples with timestamps on the LSL clock into a ring buffer that a
background thread fills; see :class:`drivers.base.Source`. Heavy libraries (brainflow, pylsl,
mne, pyxdf) load only in the modules that need them. The participant's keyboard
(:mod:`drivers.keyboard`) is read the same way: one thread per device, its own timestamps
mapped onto the LSL clock, whatever window has focus.
"""
