"""Checkpoints of formats 1 to 5 (one flat tensor file, fields in the manifest) as state dicts.

Those formats named their tensors after the fields the checkpoint module read
(`user_weight`, `history_last_ts`, ...). `from_flat` renames them to the
dotted names the parts' `load_state_dict` takes today and fills in what a
format did not have, the way its loader did, so they load like format 6:

- 1 (tables and history): no row-policy state, so none is given (the loader
  takes last sights from the seen history, as it does for a checkpoint saved
  without a row policy);
- 2 (+ row policy state), 3 (+ recent-item context: before it, the context
  starts fresh; its recent-item ring is dropped, the seen history holds the
  same clicks and the learner reads them there), 4 (+ popularity prior: before it, every item
  gets `L = 0`, because the saved bias column is the learned bias alone), 5 (+
  transitions and the choice of their weight: before it, they start fresh).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from models.state import JSON, StateDict

# Flat name in formats 1 to 5 -> dotted name of format 6.
_RENAMED = {
    "user_weight": "learner.user_table.weight",
    "user_grad_sq": "learner.user_table.grad_sq",
    "item_weight": "learner.item_table.weight",
    "item_grad_sq": "learner.item_table.grad_sq",
    "context_weight": "learner.context_table.weight",
    "context_grad_sq": "learner.context_table.grad_sq",
    "prior_log_mass": "learner.prior.log_mass",
    "transition_successors": "learner.transition.table.successors",
    "transition_weights": "learner.transition.table.weights",
    "transition_written": "learner.transition.table.written",
    "history_items": "history.items",
    "history_written": "history.written",
    "history_last_ts": "history.last_ts",
    "user_last_seen": "rows.users.last_seen",
    "item_last_seen": "rows.items.last_seen",
}


def from_flat(manifest: Mapping[str, JSON], tensors: Mapping[str, torch.Tensor]) -> StateDict:
    """The state dict a format 1 to 5 checkpoint stands for (shapes are checked by the parts)."""
    state: StateDict = {_RENAMED[name]: t for name, t in tensors.items() if name in _RENAMED}
    state["learner.steps"] = manifest.get("steps")
    state["learner.users.ids"] = manifest.get("users")
    state["learner.items.ids"] = manifest.get("items")
    if "prior_log_mass" in tensors:
        ref, clock = manifest.get("prior_ref"), manifest.get("prior_clock")
        state["learner.prior.ref"] = ref if isinstance(ref, (int, float)) else 0.0
        state["learner.prior.clock"] = clock if isinstance(clock, (int, float)) else None
    else:  # L = 0: neutral, the saved bias column is the learned bias alone
        items = manifest.get("items")
        rows = len(items) if isinstance(items, list) else 0
        state["learner.prior.log_mass"] = torch.zeros(rows, dtype=torch.float64)
        state["learner.prior.ref"], state["learner.prior.clock"] = 0.0, None
    # "transition_selector" (the retired online choice of a transition weight) is dropped
    if "user_last_seen" in tensors:
        state["rows.users.pending.counts"] = manifest.get("pending_users") or []
        state["rows.items.pending.counts"] = manifest.get("pending_items") or []
    return state
