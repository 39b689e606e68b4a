"""`mmstream devices`: the audio inputs a `microphone` source can name."""

from __future__ import annotations

import json

import typer

from mmstream.cli.app import app, user_errors


@app.command()
def devices(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per device."),
) -> None:
    """List audio input devices: index, name, host API, input channels, default rate."""
    from mmstream.errors import SourceError

    with user_errors():
        try:
            from mmstream.sources.microphone import list_input_devices

            found = list_input_devices()
        except OSError as exc:  # PortAudio itself is missing
            raise SourceError(f"cannot list audio devices: {exc} (install libportaudio2)"
                              ) from None
        if as_json:
            for device in found:
                typer.echo(json.dumps(device.__dict__))
            return
        if not found:
            typer.echo("no audio input devices (see docs/speech.md for a virtual one)")
            return
        typer.echo(f"{'':2}{'index':>5}  {'name':<32} {'host api':<10} {'inputs':>6} {'rate':>8}")
        for d in found:
            mark = "*" if d.is_default else " "
            typer.echo(f"{mark:2}{d.index:>5}  {d.name[:32]:<32} {d.hostapi[:10]:<10} "
                       f"{d.channels:>6} {d.default_rate:>8.0f}")
        typer.echo("* default input; use `device: <index or name>` in a microphone source")
