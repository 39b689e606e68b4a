"""Every check `run` makes of a valid pipeline before it opens a device or connects: files that
must exist and be readable, folders that must be writable, the broker URL, the models.

`mmstream run` and `mmstream config validate` both call `preflight`, so `validate` says "valid"
exactly when `run` would get as far as opening devices; `doctor` shows the same problems.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from mmstream.config import PipelineConfig
from mmstream.errors import ConfigError, MmstreamError
from mmstream.paths import missing_reason


def preflight(config: PipelineConfig) -> list[str]:
    """What is wrong, one `field.path: problem` line each (empty when nothing is)."""
    return [*_sources(config), *_models(config), *_sinks(config), *_record(config)]


def load_checked(path: Path, sets: Sequence[str] = (),
                 environ: Mapping[str, str] | None = None) -> PipelineConfig:
    """A pipeline file as `run` takes it (and a SIGHUP reload re-reads it): valid, durable
    (an MQTT sink without a spool path spools on disk) and preflighted, or a ConfigError
    saying everything that is wrong."""
    from mmstream.config import load_pipeline

    config = durable_spool(load_pipeline(path, sets=sets, environ=environ), environ)
    config = history_in_state_directory(config, environ)
    require_preflight(config, str(path))
    return config


def durable_spool(config: PipelineConfig, environ: Mapping[str, str] | None = None
                  ) -> PipelineConfig:
    """A daemon's MQTT events wait on disk while the broker is away (and across a crash or a
    reboot): an unset spool path becomes `<state dir>/<device_id>.spool.db`."""
    mqtt = config.sinks.mqtt
    if mqtt is None or mqtt.spool.path is not None:
        return config
    path = state_directory(environ) / f"{config.device_id}.spool.db"
    spool = mqtt.spool.model_copy(update={"path": path})
    sinks = config.sinks.model_copy(update={"mqtt": mqtt.model_copy(update={"spool": spool})})
    return config.model_copy(update={"sinks": sinks})


def history_in_state_directory(config: PipelineConfig,
                               environ: Mapping[str, str] | None = None) -> PipelineConfig:
    """A daemon keeps its history (docs/history.md): an unset path becomes
    `<state dir>/<device_id>.history.db`. A folder it cannot write is not an error here: the
    daemon warns and runs on without history."""
    history = config.history
    if not history.enabled or history.path is not None:
        return config
    path = state_directory(environ) / f"{config.device_id}.history.db"
    return config.model_copy(update={"history": history.model_copy(update={"path": path})})


def state_directory(environ: Mapping[str, str] | None = None) -> Path:
    """systemd's $STATE_DIRECTORY (StateDirectory=), else the user's XDG state directory."""
    env = os.environ if environ is None else environ
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local"
                                             / "state")
    return Path(base) / "mmstream"


def require_preflight(config: PipelineConfig, origin: str) -> None:
    problems = preflight(config)
    if len(problems) == 1:
        raise ConfigError(f"{origin}: {problems[0]}")
    if problems:
        raise ConfigError("\n  ".join([f"{origin}:", *problems]))


def _readable(where: str, path: Path, what: str = "file") -> Iterator[str]:
    if (missing := missing_reason(path, what)) is not None:
        yield f"{where}: {missing}: {path}"
    elif what == "file" and not path.is_file():
        yield f"{where}: not a file: {path}"
    elif not os.access(path, os.R_OK):
        yield f"{where}: not readable: {path}"


def _writable_folder(where: str, target: Path) -> Iterator[str]:
    """The folder `target` goes in must exist (or be creatable) and be writable."""
    folder = target if not target.suffix else target.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        yield f"{where}: cannot write in {folder}"


def _sources(config: PipelineConfig) -> Iterator[str]:
    for index, source in enumerate(config.sources):
        where = f"sources.{index}.path"
        if source.kind in ("file", "recording"):
            yield from _readable(where, Path(source.path))  # type: ignore[union-attr]
        elif source.kind == "camera" and isinstance(source.url, str) and _is_file(source.url):
            yield from _readable(f"sources.{index}.url", Path(source.url))


def _is_file(url: str) -> bool:
    """A camera URL that names a video file (devices may appear later: not checked here)."""
    return "://" not in url and not url.startswith("/dev/") and not url.isdigit()


def _models(config: PipelineConfig) -> Iterator[str]:
    transcribe, infer = config.stages.transcribe, config.stages.infer
    if transcribe.enabled and transcribe.model != "bundled":
        yield from _readable("stages.transcribe.model", Path(transcribe.model).expanduser(),
                             "folder")
    if infer.enabled and infer.checkpoint is not None:
        yield from _readable("stages.infer.checkpoint", Path(infer.checkpoint).expanduser())
    if infer.enabled and infer.vocabulary is not None:
        found = list(_readable("stages.infer.vocabulary", Path(infer.vocabulary).expanduser()))
        yield from found or _vocabulary(infer.vocabulary)


def _vocabulary(path: str) -> Iterator[str]:
    from mmstream.models.labels import load_scene_vocabulary

    try:
        load_scene_vocabulary(path)
    except MmstreamError as exc:
        yield f"stages.infer.vocabulary: {exc}"


def _sinks(config: PipelineConfig) -> Iterator[str]:
    jsonl, mqtt = config.sinks.jsonl, config.sinks.mqtt
    if jsonl is not None and jsonl.path != "-":
        yield from _writable_folder("sinks.jsonl.path", Path(jsonl.path).expanduser())
    if mqtt is None:
        return
    from mmstream.sinks.mqtt import parse_mqtt_url

    try:
        broker = parse_mqtt_url(mqtt.url)
    except ConfigError as exc:
        yield f"sinks.mqtt.url: {exc}"
        return
    if mqtt.password_file is not None:
        yield from _readable("sinks.mqtt.password_file", mqtt.password_file)
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(mqtt.tls, name)
        if path is not None:
            yield from _readable(f"sinks.mqtt.tls.{name}", path)
    has_user = mqtt.username or broker.username
    if mqtt.control and not has_user and mqtt.tls.cert_file is None:
        yield ("sinks.mqtt.control: needs an authenticated broker connection "
               "(username/password or a client certificate)")
    if isinstance(mqtt.spool.path, Path):
        yield from _writable_folder("sinks.mqtt.spool.path", mqtt.spool.path)


def _record(config: PipelineConfig) -> Iterator[str]:
    record = config.record
    if record is None:
        return
    if record.path is not None:
        yield from _writable_folder("record.path", record.path)
    if record.dir is not None:
        yield from _writable_folder("record.dir", record.dir)
