"""Scale-out: user state follows its input partition, items are shared between workers.

The pattern is Kafka Streams' changelog, on Kafka's own mechanisms only:

- **State topic** `{topic}.state`, as many partitions as the input, key = user
  id (compacted where the broker supports it). Each user row remembers its
  input partition. Every `state_flush_s`, and on revoke, the worker writes the
  users it changed in each owned partition, then a marker holding the input
  offset that state reflects, and waits for the acknowledgements. On assign,
  before anything is consumed, the new owner reads the partition to its end,
  restores the latest record of each user, writes a marker of its own (so a
  marker always exists from here on) and starts the input at the marker:
  events after it are re-read (counted as `rereads`), never skipped. Input
  offsets are committed as before; the marker, not the commit, says where a
  new owner starts, so no commit ever waits for the state topic.
- **Item feed** `{topic}.items` (one partition): every `item_sync_s` each
  worker sends the changes of the item rows it touched (`item_deltas`) and its
  clicks per item, tagged (origin, seq); every worker folds in the others'
  records (its own and any seq already applied are skipped, so a re-delivery
  is harmless). Beside them go the transition pairs its batches added
  (`transitions`, by id) and its ranker (`ranker_share`). A starting worker
  reads the last item snapshot (`snapshot`, `snapshot_topic`: one record per
  item, written by the owner of input partition 0) and the feed after it
  before it consumes, so it begins with the current item table at a cost that
  follows the catalogue, not the feed's history.

On revoke the revoked partitions' users are flushed, then dropped locally; a
partition lost without a revoke (session timeout) is dropped unflushed: its
new owner may already be writing.

The modules, by job: `service` (the loop hook that ties the rest together),
`ledger` and `ownership` (which partition each user row belongs to; its
hand-over through the state topic), `handover` (a set of users' state out of
one model and into another), `item_deltas`, `transitions`, `ranker_share`
(what is shared of items, pairs and the ranker), `item_feed` (sending and
folding the feed), `snapshot` and `snapshot_topic` (the item snapshot),
`codec` and `snapshot_codec` (the records' bytes), `metrics`, `peers` (scale-out
off, yet not alone) and `build` (topics and clients from the settings).
Empty on purpose: import from the modules.
"""
