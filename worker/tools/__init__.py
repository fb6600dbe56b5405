"""The tools around the service: replay, demo, the evaluation harness and the benchmarks.

None of them is imported by `recstream run`; each is loaded by its own CLI command.
"""
