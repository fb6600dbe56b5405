"""Embedding tables, id maps and the online learner: arrays in, arrays out, no I/O.

No file is opened here (`tests/unit/test_layers.py` reads the source for it): state leaves
as `state_dict()` and pure splits of it, and worker/ writes and reads the files.

Empty on purpose: import from the modules (`models.learner`, `models.errors`, ...), so that
reading an error class does not load torch.
"""
