"""Test servers and generated streams: an embedded broker and Valkey, synthetic click logs.

Not part of the service. Kept in the package (as `structlog.testing` is) so `recstream demo`,
the benchmarks and the tests start the same servers the same way.
"""
