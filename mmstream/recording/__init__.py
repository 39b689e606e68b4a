"""Recordings: the MCAP layout, a writer, a crash-tolerant reader and `info`.

A leaf: it knows events, media items and the `record:` config, nothing of pipelines, stages,
sinks or the CLI. The recorder sink (`sinks/recorder.py`) writes through it, the recording
source (`sources/recording.py`), `replay.diff` and the reports (`web/`) read through it.
"""
