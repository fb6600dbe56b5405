"""Errors of the model layer, of the family rooted in `recstream.errors`."""

from __future__ import annotations

from recstream.errors import RecstreamError


class ModelError(RecstreamError):
    """A model was asked for something its state cannot give."""


class ModelFitError(ModelError):
    """An update produced non-finite parameters; the batch was not applied."""


class StateError(ModelError):
    """A state dict does not fit the part asked to load it (another shape, a missing name)."""


class CheckpointError(ModelError):
    """A checkpoint could not be written or read back, or its directory cannot hold one."""
