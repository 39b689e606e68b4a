"""`mmstream train LABELS.jsonl --out fusion.pt`: fine-tune the fusion on labelled windows."""

from __future__ import annotations

from pathlib import Path

import typer

from mmstream.cli.app import app, user_errors


@app.command()
def train(
    labels: Path = typer.Argument(..., help="Labelled windows, JSON Lines (see docs/models.md)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the fusion checkpoint."),
    epochs: int = typer.Option(100, "--epochs", min=1, help="Full passes over the windows."),
    lr: float = typer.Option(0.01, "--lr", min=0.0, help="Adam learning rate."),
    seed: int = typer.Option(0, "--seed", help="Random seed (training is deterministic)."),
    vocabulary: Path | None = typer.Option(None, "--vocabulary",
                                           help="Scene vocabulary YAML (default bundled)."),
    base: Path | None = typer.Option(None, "--from",
                                     help="Start from this checkpoint instead of the defaults."),
) -> None:
    """Fine-tune the fusion gates and heads; the encoders stay frozen.

    Each line of LABELS is one window: {"media": "clip.mp4", "start": 2.0, "end": 4.0,
    "emotion": "happy", "valence": 0.6, "scene": ["person"], "text": "..."}. Use the
    checkpoint with `--set stages.infer.checkpoint=PATH` (run, replay) or in a pipeline file.
    """
    with user_errors():
        from mmstream.models.fused_model import FusedModel, plan_for
        from mmstream.training import read_labels, train_fusion

        model = FusedModel(plan_for("cpu"), checkpoint=str(base) if base else None,
                           vocabulary=str(vocabulary) if vocabulary else None)
        windows = read_labels(labels, model.fusion.tags)
        typer.echo(f"training on {len(windows)} labelled windows from {labels}", err=True)
        report = train_fusion(model, windows, out, epochs=epochs, lr=lr, seed=seed)
        accuracy = ""
        if report.emotion_accuracy_before is not None:
            accuracy = (f"; emotion accuracy {report.emotion_accuracy_before:.2f} -> "
                        f"{report.emotion_accuracy_after:.2f}")
        typer.echo(f"loss {report.loss_before:.4f} -> {report.loss_after:.4f}{accuracy}",
                   err=True)
        typer.echo(f"wrote {out} (fusion:{report.version})")
