"""Embedding tables, id maps and the online learner: arrays in, arrays out, no I/O.

Empty on purpose: import from the modules (`models.learner`, `models.errors`, ...), so that
reading an error class does not load torch.
"""
