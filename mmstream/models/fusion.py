"""Cross-modal fusion: per-modality embeddings → shared width → gated combination → heads.

The seed design: each modality m (image, face, voice, text) gives an embedding, projected to a
common width, x_m = P_m [p_m, v_m, e_m], where p_m/v_m are the modality expert's emotion
probabilities and valence and e_m its embedding. A gate weighs the present modalities,

    w_m = softmax_m( log prior_m + log confidence_m + g_m·x_m ),   absent m masked out,
    x   = Σ_m w_m x_m,

and heads read the fused x: emotion (7 classes) + valence, and multi-label scene tags.

Untrained it must already make sense, so the parameters start as a calibrated combination of
the pretrained experts: P_m copies p_m and v_m into the first 8 dims of x, the gate vectors g_m
and the residual heads start at zero, so x[:7] is the confidence- and prior-weighted mixture of
the experts' emotion distributions and x[7] the mixture of their valences; scene tags start as
the image classifier's ImageNet probabilities pooled into the readable vocabulary (lifted
above the chance level of each tag's share of classes), with a
detected face as evidence for `person` (ImageNet has almost no person classes). The remaining
dims of x start random (seeded) and only matter once `mmstream train` fits the gates and heads.

Scene scores are published calibrated: the fused evidence of each tag goes through
`labels.calibrate`, which maps the tag's threshold (from the vocabulary) to 0.5, so one
`scene_threshold` (0.5) publishes each tag at its own threshold.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmstream.errors import ModelError
from mmstream.events import EMOTIONS
from mmstream.models import prosody, text_affect
from mmstream.models.affect_experts import TextExpert, VoiceExpert
from mmstream.models.fused_windows import checkpoint_version
from mmstream.models.labels import SceneVocabulary, best_group, calibrate

CHECKPOINT_FORMAT = "mmstream.fusion/1"
EMOTION_MODALITIES: tuple[str, ...] = ("face", "voice", "text")
SCENE_MODALITIES: tuple[str, ...] = ("image", "face", "voice", "text")
EXPERT_DIMS = len(EMOTIONS) + 1  # emotion probabilities + valence
WIDTH = 64
IMAGE_EMBED = 1280
FACE_EMBED = 128
# Prior trust in each modality's emotion evidence (faces are the clearest, voice the weakest).
EMOTION_PRIOR: dict[str, float] = {"face": 1.0, "voice": 0.25, "text": 0.6}
SCENE_PRIOR: dict[str, float] = {"image": 1.0, "face": 0.2, "voice": 0.1, "text": 0.1}
FACE_TEMPERATURE = 1.5  # FER classifiers are over-confident; soften before mixing
EMOTION_VALENCE = torch.tensor([prosody.CIRCUMPLEX[e][0] for e in EMOTIONS])
EPS = 1e-6
LEGACY_KEYS = frozenset({"tag_matrix", "tag_share"})


@dataclass
class FusionInputs:
    """One batch of expert outputs; every tensor has batch size B, masks are bool [B]."""

    image_embed: torch.Tensor  # [B,1280]
    image_probs: torch.Tensor  # [B,1000] ImageNet softmax
    image_mask: torch.Tensor
    face_embed: torch.Tensor  # [B,128]
    face_logits: torch.Tensor  # [B,7]
    face_conf: torch.Tensor  # [B]
    face_mask: torch.Tensor
    voice_feats: torch.Tensor  # [B, prosody.N_FEATURES]
    voice_conf: torch.Tensor
    voice_mask: torch.Tensor
    text_feats: torch.Tensor  # [B, text_affect.N_FEATURES]
    text_conf: torch.Tensor
    text_mask: torch.Tensor

    def index(self, rows: torch.Tensor | slice) -> FusionInputs:
        return FusionInputs(**{k: v[rows] for k, v in vars(self).items()})

    def to(self, device: torch.device | str) -> FusionInputs:
        return FusionInputs(**{k: v.to(device) for k, v in vars(self).items()})


@dataclass
class FusionOutputs:
    emotion_probs: torch.Tensor  # [B,7]
    valence: torch.Tensor  # [B]
    emotion_weights: torch.Tensor  # [B,3] gate weights of face, voice, text (0 when absent)
    expert_probs: torch.Tensor  # [B,3,7] each modality's own emotion distribution
    expert_valence: torch.Tensor  # [B,3]
    expert_conf: torch.Tensor  # [B,3]
    expert_mask: torch.Tensor  # [B,3] bool
    scene_scores: torch.Tensor  # [B,T] calibrated tag scores (0.5 = the tag's threshold)
    image_tag_scores: torch.Tensor  # [B,T] the same for what the image alone said
    scene_weights: torch.Tensor  # [B,4] gate weights of image, face, voice, text
    face_person: torch.Tensor  # [B] evidence for `person` from the face detector
    scene_evidence: torch.Tensor  # [B,T] fused tag evidence before calibration

    def detach_cpu(self) -> FusionOutputs:
        return FusionOutputs(**{k: v.detach().float().cpu() if v.is_floating_point()
                                else v.detach().cpu() for k, v in vars(self).items()})


def _projection(embed_dim: int, expert: bool, generator: torch.Generator) -> nn.Linear:
    """[expert dims | embedding] → WIDTH; the expert dims pass straight into x[:8]."""
    layer = nn.Linear(EXPERT_DIMS + embed_dim, WIDTH)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        if expert:
            layer.weight[:EXPERT_DIMS, :EXPERT_DIMS] = torch.eye(EXPERT_DIMS)
        scale = embed_dim**-0.5
        free = torch.randn(WIDTH - EXPERT_DIMS, embed_dim, generator=generator) * scale
        layer.weight[EXPERT_DIMS:, EXPERT_DIMS:] = free
    return layer


def _zero_linear(cin: int, cout: int) -> nn.Linear:
    layer = nn.Linear(cin, cout)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _gated(xs: torch.Tensor, log_prior: torch.Tensor, conf: torch.Tensor, mask: torch.Tensor,
           gate: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """xs [B,M,W] → (Σ_m w_m x_m [B,W], w [B,M]); rows with nothing present get w = 0."""
    logits = log_prior[None, :] + conf.clamp_min(EPS).log() + gate(xs).squeeze(-1)
    logits = logits.masked_fill(~mask, float("-inf"))
    any_present = mask.any(dim=1, keepdim=True)
    weights = torch.softmax(logits.masked_fill(~any_present, 0.0), dim=1) * any_present
    return (weights[..., None] * xs).sum(dim=1), weights


class FusionModel(nn.Module):
    """Gated cross-modal fusion of the four experts with scene and emotion heads."""

    def __init__(self, vocabulary: SceneVocabulary, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.tags = list(vocabulary.tags)
        # The vocabulary is configuration, not a learnt state: not saved in checkpoints.
        self.register_buffer("group_matrix", vocabulary.groups.clone().float(), persistent=False)
        # Each group's share of the classes: what a featureless frame scores (chance level).
        self.register_buffer("group_share", vocabulary.groups.float().mean(dim=0),
                             persistent=False)
        self.register_buffer("group_membership", vocabulary.group_membership(),
                             persistent=False)
        self.register_buffer("tag_threshold", vocabulary.thresholds.clone().float(),
                             persistent=False)
        self.register_buffer("emotion_valence", EMOTION_VALENCE.clone())
        self.voice_expert = VoiceExpert()
        self.text_expert = TextExpert()
        self.face_log_temperature = nn.Parameter(torch.tensor(FACE_TEMPERATURE).log())
        self.proj = nn.ModuleDict({
            "image": _projection(IMAGE_EMBED, False, generator),
            "face": _projection(FACE_EMBED, True, generator),
            "voice": _projection(prosody.N_FEATURES, True, generator),
            "text": _projection(text_affect.N_FEATURES, True, generator),
        })
        self.emotion_log_prior = nn.Parameter(
            torch.tensor([EMOTION_PRIOR[m] for m in EMOTION_MODALITIES]).log())
        self.scene_log_prior = nn.Parameter(
            torch.tensor([SCENE_PRIOR[m] for m in SCENE_MODALITIES]).log())
        self.emotion_gate = _zero_linear(WIDTH, 1)
        self.scene_gate = _zero_linear(WIDTH, 1)
        self.emotion_head = _zero_linear(WIDTH, len(EMOTIONS))
        self.valence_head = _zero_linear(WIDTH, 1)
        self.scene_head = _zero_linear(WIDTH, len(self.tags))
        person = torch.zeros(len(self.tags))
        if "person" in self.tags:
            person[self.tags.index("person")] = 1.0
        self.face_tag_weight = nn.Parameter(person)

    def forward(self, inputs: FusionInputs) -> FusionOutputs:
        face_probs = torch.softmax(inputs.face_logits.float()
                                   / self.face_log_temperature.exp(), dim=-1)
        voice_probs, voice_valence, _ = self.voice_expert(inputs.voice_feats)
        text_probs, text_valence = self.text_expert(inputs.text_feats)
        expert_probs = torch.stack([face_probs, voice_probs, text_probs], dim=1)
        expert_valence = torch.stack(
            [face_probs @ self.emotion_valence, voice_valence, text_valence], dim=1)
        expert_conf = torch.stack([inputs.face_conf, inputs.voice_conf, inputs.text_conf],
                                  dim=1).float()
        expert_mask = torch.stack([inputs.face_mask, inputs.voice_mask, inputs.text_mask], dim=1)
        voice_z = (inputs.voice_feats.float() - self.voice_expert.centre) / self.voice_expert.spread
        embeds = {"face": inputs.face_embed.float(), "voice": voice_z.clamp(-3, 3),
                  "text": inputs.text_feats.float()}
        xs = {m: self.proj[m](torch.cat([expert_probs[:, i], expert_valence[:, i, None],
                                         embeds[m]], dim=-1))
              for i, m in enumerate(EMOTION_MODALITIES)}
        image_in = torch.cat([torch.zeros_like(expert_probs[:, 0]),
                              torch.zeros_like(expert_valence[:, :1]),
                              inputs.image_embed.float()], dim=-1)
        xs["image"] = self.proj["image"](image_in)

        emo_x, emo_w = _gated(torch.stack([xs[m] for m in EMOTION_MODALITIES], dim=1),
                              self.emotion_log_prior, expert_conf, expert_mask,
                              self.emotion_gate)
        mixture = emo_x[:, : len(EMOTIONS)].clamp_min(EPS)
        mixture = mixture / mixture.sum(-1, keepdim=True)
        emotion_probs = torch.softmax(mixture.log() + self.emotion_head(emo_x), dim=-1)
        valence = (emo_x[:, len(EMOTIONS)] + self.valence_head(emo_x)[:, 0]).clamp(-1.0, 1.0)

        scene_conf = torch.cat([torch.ones_like(expert_conf[:, :1]), expert_conf], dim=1)
        scene_mask = torch.cat([inputs.image_mask[:, None], expert_mask], dim=1)
        scene_x, scene_w = _gated(torch.stack([xs[m] for m in SCENE_MODALITIES], dim=1),
                                  self.scene_log_prior, scene_conf, scene_mask, self.scene_gate)
        # Best group per tag, lifted above chance: a grey frame must not be 40% `animal`.
        image_tags = best_group(inputs.image_probs.float() @ self.group_matrix,
                                self.group_share, self.group_membership, above_chance=True)
        image_tags = image_tags * inputs.image_mask[:, None]
        from_image = torch.sigmoid(torch.logit(image_tags, eps=EPS) + self.scene_head(scene_x))
        face_person = inputs.face_conf.float() * inputs.face_mask
        from_face = self.face_tag_weight.clamp(0.0, 1.0)[None, :] * face_person[:, None]
        scene = 1.0 - (1.0 - from_image) * (1.0 - from_face)  # noisy-or of the two sources
        return FusionOutputs(emotion_probs, valence, emo_w, expert_probs, expert_valence,
                             expert_conf, expert_mask, calibrate(scene, self.tag_threshold),
                             calibrate(image_tags, self.tag_threshold), scene_w, face_person,
                             scene)


def save_checkpoint(model: FusionModel, path: str | Path, meta: dict[str, Any]) -> str:
    """Write a fusion checkpoint; returns its version id (sha256 prefix of the file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "tags": model.tags,
                "state_dict": model.state_dict(), "meta": meta}, path)
    return checkpoint_version(path)


def load_checkpoint(model: FusionModel, path: str | Path) -> dict[str, Any]:
    """Load fine-tuned fusion parameters into `model`; returns the checkpoint's meta."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelError(f"cannot read fusion checkpoint {path}: not a torch checkpoint "
                         "of plain tensors (as `mmstream train` writes)") from None
    except (OSError, RuntimeError, EOFError) as exc:
        raise ModelError(f"cannot read fusion checkpoint {path}: {exc}") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: not an mmstream fusion checkpoint ({CHECKPOINT_FORMAT})")
    if list(blob.get("tags", [])) != model.tags:
        raise ModelError(f"{path}: trained for scene tags {blob.get('tags')}, but the "
                         f"vocabulary in use has {model.tags}")
    # Checkpoints before vocabulary groups saved the class matrix; it comes from the vocabulary.
    state = {k: v for k, v in blob["state_dict"].items() if k not in LEGACY_KEYS}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: does not fit this fusion model: {exc}") from None
    return dict(blob.get("meta", {}))
