"""The service: settings, the batch loop and its Engine, checkpoints, metrics and health.

`worker.cli` is the `recstream` command, each command's options beside what it runs
(`worker.run_command`, `worker.tools.*_command`, `worker.tools.evaluate.command`, ...);
`worker.tools` holds replay, demo, eval and bench, and `worker.testing` the embedded
servers and generated streams they and the tests use.
Empty on purpose, so `recstream --help` loads none of torch, faiss or the clients.
"""
