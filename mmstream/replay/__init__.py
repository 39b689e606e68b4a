"""Recording and replay: the MCAP layout, a crash-tolerant reader, batch replays and run diffs."""
