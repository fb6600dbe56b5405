"""The edges: the event contract and codec, the Kafka source and DLQ, the Redis sink.

Empty on purpose: the Engine needs `stream.payload` (msgpack only), not the clients that
`stream.kafka` (and its siblings) and `stream.redis_sink` load.
"""
