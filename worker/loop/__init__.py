"""The batch loop and what it drives: poll sizing, the Redis writer thread, retries, hooks.

`batch_loop` is the one place that knows the order of things; `config` its knobs;
`batching` how many events the next poll asks for; `publisher` the write of one batch
beside the next; `retry` capped backoff at the edges; `hooks` the protocol optional
parts plug into; `topic_watch` and `unfetchable` the input topic's odd states.
Empty on purpose: import from the modules.
"""
