"""`mmstream devices`: the cameras a `camera` source and the audio inputs a `microphone`
source can name."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from mmstream.cli.app import app, user_errors


@app.command()
def devices(
    as_json: bool = typer.Option(False, "--json", help="A JSON array, one object per device "
                                 "([] when there is none)."),
) -> None:
    """List cameras (V4L2: path, name, driver, pixel formats with their frame sizes) and
    audio inputs (index, name, host API, input channels, default rate)."""
    from mmstream.sources.v4l2 import list_cameras

    with user_errors():
        cameras = list_cameras()
        microphones = _microphones()
        if as_json:  # one document, so "no devices" is `[]`, not an empty output
            found = [{"kind": "camera", **asdict(camera)} for camera in cameras]
            found += [{"kind": "microphone", **device.__dict__} for device in microphones]
            typer.echo(json.dumps(found, indent=2))
            return
        _print_cameras(cameras)
        typer.echo("")
        _print_microphones(microphones)


def _microphones() -> list:
    from mmstream.errors import SourceError

    try:
        from mmstream.sources.microphone import list_input_devices

        return list_input_devices()
    except OSError as exc:  # PortAudio itself is missing
        raise SourceError(f"cannot list audio devices: {exc} (install libportaudio2)") from None


def _print_cameras(cameras: list) -> None:
    if not cameras:
        typer.echo("cameras: none (no /dev/video* capture device; a network camera URL such "
                   "as rtsp:// or http:// works as a camera source's url)")
        return
    typer.echo("cameras:")
    for camera in cameras:
        if camera.error:
            typer.echo(f"  {camera.path}: cannot open ({camera.error})")
            continue
        typer.echo(f"  {camera.path}  {camera.card} ({camera.driver})")
        for fmt in camera.formats:
            sizes = ", ".join(fmt.sizes) or "sizes not listed"
            typer.echo(f"      {fmt.fourcc:<5} {fmt.description[:28]:<28} {sizes}")
    typer.echo("  use `url: /dev/videoN` (and width/height) in a camera source")


def _print_microphones(found: list) -> None:
    if not found:
        typer.echo("microphones: none (see docs/speech.md for a virtual one)")
        return
    typer.echo("microphones:")
    typer.echo(f"{'':2}{'index':>5}  {'name':<32} {'host api':<10} {'inputs':>6} {'rate':>8}")
    for d in found:
        mark = "*" if d.is_default else " "
        typer.echo(f"{mark:2}{d.index:>5}  {d.name[:32]:<32} {d.hostapi[:10]:<10} "
                   f"{d.channels:>6} {d.default_rate:>8.0f}")
    typer.echo("* default input; use `device: <index or name>` in a microphone source")
