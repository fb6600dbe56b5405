"""One frozen, typed settings object from `RECSTREAM_*`, split by concern.

`settings` is the object and its sections; `edges` the Kafka and Redis parts; `parts` the
components' (model, lists, candidates, events, rows, loop, index); `limits` the finite
bounds they share.
Empty on purpose: import from the modules.
"""
