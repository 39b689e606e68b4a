"""The voice and text experts of the fusion: torch modules over the prosody and text-affect
features, their calibration as parameters that `mmstream train` can refit.

Kept apart from the features themselves (prosody.py, text_affect.py: numpy only), so the
run-time path, which runs the exported fusion graph in ONNX Runtime, never imports torch.
"""

from __future__ import annotations

import torch
from torch import nn

from mmstream.events import EMOTIONS
from mmstream.models.prosody import (
    AROUSAL_CUES,
    AROUSAL_WIDTH,
    CIRCUMPLEX,
    FEATURES,
    N_FEATURES,
    VOICE_PRIOR,
)
from mmstream.models.text_affect import FEATURES as TEXT_FEATURES
from mmstream.models.text_affect import N_FEATURES as N_TEXT_FEATURES
from mmstream.models.text_affect import TEXT_BIAS, TEXT_WEIGHTS


def _emotion_vector(table: dict[str, float]) -> torch.Tensor:
    return torch.tensor([table[e] for e in EMOTIONS], dtype=torch.float32)


class VoiceExpert(nn.Module):
    """Prosody features [B,F] → (emotion probabilities [B,7], valence [B], arousal [B])."""

    def __init__(self) -> None:
        super().__init__()
        centre = torch.zeros(N_FEATURES)
        spread = torch.ones(N_FEATURES)
        weight = torch.zeros(N_FEATURES)
        for name, (c, s, w) in AROUSAL_CUES.items():
            i = FEATURES.index(name)
            centre[i], spread[i], weight[i] = c, s, w
        self.register_buffer("centre", centre)
        self.register_buffer("spread", spread)
        self.arousal_weight = nn.Parameter(weight)
        self.arousal_gain = nn.Parameter(torch.tensor(1.5))
        self.emotion_arousal = nn.Parameter(_emotion_vector({k: v[1] for k, v in
                                                              CIRCUMPLEX.items()}))
        self.log_prior = nn.Parameter(_emotion_vector(VOICE_PRIOR).log())
        self.log_width = nn.Parameter(torch.tensor(AROUSAL_WIDTH).log())
        self.register_buffer("emotion_valence",
                             _emotion_vector({k: v[0] for k, v in CIRCUMPLEX.items()}))

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = ((feats.float() - self.centre) / self.spread).clamp(-3.0, 3.0)
        arousal = torch.tanh(self.arousal_gain * (z * self.arousal_weight).sum(-1))
        distance = (arousal[:, None] - self.emotion_arousal[None, :]) / self.log_width.exp()
        probs = torch.softmax(self.log_prior - 0.5 * distance**2, dim=-1)
        return probs, probs @ self.emotion_valence, arousal


class TextExpert(nn.Module):
    """Text features [B,F] → (emotion probabilities [B,7], valence [B])."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(N_TEXT_FEATURES, len(EMOTIONS))
        with torch.no_grad():
            self.linear.weight.zero_()
            for row, emotion in enumerate(EMOTIONS):
                for name, weight in TEXT_WEIGHTS[emotion].items():
                    self.linear.weight[row, TEXT_FEATURES.index(name)] = weight
                self.linear.bias[row] = TEXT_BIAS[emotion]
        self.valence_gain = nn.Parameter(torch.tensor(1.0))
        self.compound_index = TEXT_FEATURES.index("compound")

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = feats.float()
        probs = torch.softmax(self.linear(feats), dim=-1)
        valence = (self.valence_gain * feats[:, self.compound_index]).clamp(-1.0, 1.0)
        return probs, valence
