"""Replays: batch and Ray reprocessing, run diffs and what a replay runs (recordings themselves
are `mmstream.recording`)."""
