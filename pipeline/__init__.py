"""s2cap pipeline: the Sample record, stages, runner, captioners, filters, shards and the CLI."""
