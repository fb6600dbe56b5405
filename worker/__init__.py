"""The service: its folders are its parts, in the order a batch meets them.

- `app` builds a `Worker` from the settings; `startup` checks them and the servers first;
  `cli` is the `recstream` command, `commands` the service's own (run, healthcheck);
- `config`: the typed `RECSTREAM_*` settings, split by concern;
- `loop`: the batch loop, its poll sizing, Redis writer thread, retries and hook protocol;
- `engine`: the model side of a batch (learn, index, two-stage rank), no I/O;
- `storage`: checkpoints and vectors files on disk;
- `catalogue`: operator control of items and the sweep of stored lists;
- `scaleout`: user state following partitions, items shared between workers;
- `observability`: logs, metrics, health, stage timings and per-batch accounting;
- `tools` holds replay, demo, eval and bench, and `testing` the embedded servers and
  generated streams they and the tests use.
Empty on purpose, so `recstream --help` loads none of torch, faiss or the clients.
"""
