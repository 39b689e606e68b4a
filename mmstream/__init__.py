"""mmstream: camera + microphone -> transcripts, scene and emotion tags -> MQTT."""

__version__ = "0.1.0"
