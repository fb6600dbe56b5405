"""Errors of the model layer, and the root every recstream error derives from.

The root lives here because `models/` is the bottom of the import graph: every
other package may import it without creating a cycle.
"""

from __future__ import annotations


class RecstreamError(Exception):
    """Base of every error recstream raises on purpose."""


class ModelError(RecstreamError):
    """A model was asked for something its state cannot give."""


class ModelFitError(ModelError):
    """An update produced non-finite parameters; the batch was not applied."""


class StateError(ModelError):
    """A state dict does not fit the part asked to load it (another shape, a missing name)."""


class CheckpointError(ModelError):
    """A checkpoint could not be written or read back, or its directory cannot hold one."""
