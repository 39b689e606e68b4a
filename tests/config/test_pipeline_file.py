"""Pipeline files: validation with field paths, env and --set overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mmstream.config import MAX_SOURCES, load_pipeline
from mmstream.errors import ConfigError
from tests.conftest import REPO

PIPELINES = REPO / "pipelines"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_every_shipped_pipeline_file_is_valid() -> None:
    files = sorted(PIPELINES.glob("*.yaml"))
    assert files, "pipelines/ must ship ready pipeline files"
    for path in files:
        load_pipeline(path, environ={})


def test_wrong_field_type_names_the_path_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - kind: file\n    path: a.mp4\n    fps: fast\n")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, environ={})
    message = str(caught.value)
    assert "sources.0.file.fps" in message and "'fast'" in message and str(path) in message


def test_unknown_field_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "sources: [{kind: synthetic}]\nsinks: {mqtt: {urll: x}}\n")
    with pytest.raises(ConfigError, match=r"sinks\.mqtt\.urll: Extra inputs are not permitted"):
        load_pipeline(path, environ={})


def test_a_setting_of_an_earlier_release_says_what_replaced_it(tmp_path: Path) -> None:
    path = write(tmp_path, "sources: [{kind: synthetic}]\nruntime: {clock: media}\n"
                           "stages: {infer: {batching: auto}}\n")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, environ={})
    message = str(caught.value)
    assert "runtime.clock: replaced by runtime.mode" in message
    assert "stages.infer.batching: removed: batching follows runtime.mode" in message


def test_env_and_set_override_in_that_order(tmp_path: Path) -> None:
    path = write(tmp_path, "device_id: a\nsources: [{kind: synthetic}]\nsinks: {mqtt: {}}\n")
    env = {"MMSTREAM_DEVICE_ID": "from-env", "MMSTREAM_SINKS__MQTT__QOS": "0",
           "MMSTREAM_SOURCES__0__FPS": "7", "MMSTREAM_UNRELATED": "ignored"}
    config = load_pipeline(path, environ=env, sets=["device_id=from-set"])
    assert config.device_id == "from-set"
    assert config.sinks.mqtt is not None and config.sinks.mqtt.qos == 0
    assert config.sources[0].fps == 7.0


def test_bad_set_option_is_clear() -> None:
    with pytest.raises(ConfigError, match=r"--set expects key\.path=value"):
        load_pipeline(base={"sources": [{"kind": "synthetic"}]}, sets=["nonsense"], environ={})


def test_relative_media_paths_resolve_next_to_the_pipeline_file(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"")
    path = write(tmp_path, "sources: [{kind: file, path: clip.mp4}]\n")
    assert load_pipeline(path, environ={}).sources[0].path == tmp_path / "clip.mp4"


def test_config_validate_command(cli, tmp_path: Path) -> None:
    good = cli("config", "validate", str(PIPELINES / "demo.yaml"))
    assert good.returncode == 0, good.stderr
    assert "valid" in good.stdout
    bad_file = write(tmp_path, "sources: [{kind: file, path: 3, fps: x}]")
    bad = cli("config", "validate", str(bad_file))
    assert bad.returncode == 2
    assert "sources.0.file.fps" in bad.stderr and "Traceback" not in bad.stderr


def test_config_validate_runs_the_checks_run_makes(cli, tmp_path: Path) -> None:
    """What `run` would refuse, `validate` refuses too, naming the field."""
    pipeline = write(tmp_path, "sources: [{kind: file, path: gone.mp4}]\n"
                               "sinks: {mqtt: {url: 'htp://127.0.0.1:99999'}}")
    for command in (("config", "validate"), ("run",)):
        result = cli(*command, str(pipeline), timeout=60)
        assert result.returncode == 2, result.stderr
        assert "sources.0.path: no such file: gone.mp4" in result.stderr
        assert "sinks.mqtt.url: MQTT URL htp://127.0.0.1: scheme must be mqtt://" in result.stderr
    port = cli("config", "validate", str(pipeline), "--set", "sinks.mqtt.url=mqtt://h:99999",
               "--set", f"sources.0.path={tmp_path}", timeout=60)
    assert "sinks.mqtt.url: MQTT URL mqtt://h: bad port" in port.stderr
    assert f"sources.0.path: not a file: {tmp_path}" in port.stderr


def test_errors_name_the_environment_variable_or_set_that_gave_the_value(
        cli, tmp_path: Path) -> None:
    good = write(tmp_path, "sources: [{kind: synthetic}]")
    env = cli("config", "validate", str(good), env={"MMSTREAM_SINKS__MQTT__QOSS": "1"})
    assert env.returncode == 2
    assert ("sinks.mqtt.qoss: Extra inputs are not permitted: did you mean qos? (got 1), "
            "set by environment variable MMSTREAM_SINKS__MQTT__QOSS") in env.stderr
    assert "in " + str(good) not in env.stderr  # the file is not what is wrong
    flag = cli("config", "validate", str(good), "--set", "sources.0.fps=-1")
    assert "set by --set sources.0.fps=-1" in flag.stderr


def test_a_huge_pipeline_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    # 1.1 million sources in 50 MB took minutes and gigabytes to parse: the size bound acts
    # first (a sparse file: the check reads no more than the limit)
    path = tmp_path / "p.yaml"
    path.write_text("sources:\n" + "  - {kind: synthetic}\n" * 60_000)
    with path.open("r+b") as grow:
        grow.truncate(50 * 2**20)
    with pytest.raises(ConfigError, match=r"p\.yaml: more than 1024 KiB, the most a pipeline"):
        load_pipeline(path, environ={})


def test_too_many_sources_are_refused_naming_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n" + "  - {kind: synthetic}\n" * (MAX_SOURCES + 1))
    with pytest.raises(ConfigError, match=rf"sources: List should have at most {MAX_SOURCES}"):
        load_pipeline(path, environ={})


@pytest.mark.parametrize(("field", "value"), [
    ("device_id", "x" * 50_000_000), ("device_id", "kitchen/cam"), ("device_id", ".."),
    ("device_id", "a b"), ("device_id", "+"), ("device_id", ""), ("sources.0.id", "cam#0"),
    ("sources.0.id", "x" * 65), ("sources.0.id", "cam\n0")])
def test_ids_must_fit_topics_and_file_names(tmp_path: Path, field: str, value: str) -> None:
    path = write(tmp_path, "sources: [{kind: synthetic}]\n")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, environ={}, updates=[(field.split("."), value)])
    message = str(caught.value)
    assert field.replace("sources.0.", "sources.0.synthetic.") + ": " in message
    assert "at most 64 characters" in message or "an id has 1 to 64 letters" in message
    assert len(message) < 400  # a 50 MB id is quoted, not echoed


def test_ids_that_fit_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "device_id: kitchen-2.b_x\nsources: [{kind: synthetic, id: C0}]\n")
    config = load_pipeline(path, environ={})
    assert (config.device_id, config.sources[0].id) == ("kitchen-2.b_x", "C0")


def test_media_paths_that_cannot_be_reached_say_why(tmp_path: Path) -> None:
    from mmstream.preflight import preflight

    (tmp_path / "loop.mp4").symlink_to(tmp_path / "loop.mp4")
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    (tmp_path / "plain").write_text("")
    path = write(tmp_path, "sources:\n  - {kind: file, path: loop.mp4}\n"
                           "  - {kind: file, path: dangling.mp4, id: b}\n"
                           f"  - {{kind: file, path: {tmp_path}/plain/clip.mp4, id: c}}\n")
    config = load_pipeline(path, environ={})
    assert preflight(config) == [
        f"sources.0.path: a loop of symbolic links: {tmp_path / 'loop.mp4'}",
        f"sources.1.path: a symbolic link to no file: {tmp_path / 'dangling.mp4'}",
        f"sources.2.path: no such file (a part of the path is not a folder): "
        f"{tmp_path / 'plain' / 'clip.mp4'}"]


def test_an_unknown_field_suggests_the_closest_valid_name(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("sources:\n  - kind: file\n    path: clip.mp4\n    realtme: true\n")
    with pytest.raises(ConfigError, match=r"realtme: .*did you mean realtime\?"):
        load_pipeline(pipeline)
    pipeline.write_text("sources:\n  - kind: synthetic\n    zzzqqq: 1\n")
    with pytest.raises(ConfigError) as far_off:
        load_pipeline(pipeline)
    assert "did you mean" not in str(far_off.value)  # nothing close: no guess


def test_the_run_mode_is_one_policy_built_by_the_config() -> None:
    from mmstream.config import FAST, LIVE, PACED, validate_pipeline

    camera = validate_pipeline({"sources": [{"kind": "camera"}]})
    paced = validate_pipeline({"sources": [{"kind": "file", "path": "a.mp4", "realtime": True}]})
    fast = validate_pipeline({"sources": [{"kind": "file", "path": "a.mp4"}]})
    assert (camera.policy, paced.policy, fast.policy) == (LIVE, PACED, FAST)
    assert fast.policy is validate_pipeline({"sources": [{"kind": "file", "path": "b.mp4"}]}
                                            ).policy  # built once per mode, never per stage
    assert (fast.policy.clock, fast.policy.channels_shed, fast.policy.overload_control,
            fast.policy.results_when_ready) == ("media", False, False, False)
    assert (LIVE.clock, LIVE.channels_shed, LIVE.overload_control,
            LIVE.results_when_ready) == ("wall", True, True, True)
    assert PACED == dataclasses.replace(LIVE, mode="paced")  # paced behaves as live
