"""What the worker tells its operator: logs, metrics, health, counts and stage timings.

`stages` times a batch's stages; `accounting` adds up each finished batch once (its
docstring's table says who counts what); `stats` keeps totals for in-process callers;
`metrics` declares the Prometheus series and serves /metrics, /healthz and /readyz; `logs`
configures structlog once; `debug` renders one user's model state as JSON.
Empty on purpose: import from the modules.
"""
