"""What a learner's state must hold before any of it is loaded: its parts and their rows."""

from __future__ import annotations

from models.errors import StateError
from models.learner_config import LearnerConfig
from models.state import StateDict, part, rows_of, sequence


def checked_parts(
    state: StateDict, config: LearnerConfig, transitions: bool, *, strict: bool
) -> set[str]:
    """The optional parts `state` holds, once every row count matches its id map.

    Checked before anything changes, so a bad state leaves the learner as it was.
    With `strict=False` a missing optional part (the recent-item context, the
    transitions, which older checkpoints lack) is allowed; otherwise it is a
    `StateError`, as is any table whose rows differ from its id map's.
    """
    users = len(sequence(part(state, "users"), "ids"))
    items = len(sequence(part(state, "items"), "ids"))
    wanted = {"user_table.weight": users, "item_table.weight": items}
    if config.recent_items:
        wanted["context_table.weight"] = items
    if config.popularity_weight:  # never optional: the bias column holds beta * L
        wanted["prior.log_mass"] = items
    optional = ["context_table"] + (["transition"] if transitions else [])
    present = {name for name in optional if any(key.startswith(f"{name}.") for key in state)}
    if strict and (missing := [name for name in optional if name not in present]):
        raise StateError(f"missing parts: {', '.join(missing)}")
    for name, rows in wanted.items():
        owner = name.split(".")[0]
        if owner in optional and owner not in present:
            continue
        if (held := rows_of(state, name)) != rows:
            raise StateError(f"{name} holds {held} rows, the id map {rows}")
    return present
