"""The model side of a batch, with no I/O: learn, keep the index fresh, rank in two stages.

`engine` maps ids, learns and ranks; `two_stage` makes the lists (candidates from several
sources, then the ranker learned from the clicks); `stage_config` and `candidate_names`
say how wide each source is and what the ranker sees; `warmup` runs the device code paths
once before the worker reports ready.
Empty on purpose: import from the modules.
"""
