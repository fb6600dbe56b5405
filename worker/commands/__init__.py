"""The service's own commands (`run`, `healthcheck`) and what every command shares (`common`).

The tools' commands live beside their tools in `worker.tools`.
Empty on purpose: import from the modules.
"""
