"""The fusion layer: untrained it is the calibrated mixture of the experts; masks; checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmstream.errors import ModelError
from mmstream.events import EMOTIONS
from mmstream.models import fusion, prosody, text_affect
from mmstream.models.labels import SceneVocabulary, calibrate, load_scene_vocabulary


@pytest.fixture(scope="module")
def vocabulary() -> SceneVocabulary:
    return load_scene_vocabulary()


def _inputs(batch: int, *, face: list[bool], voice: list[bool], text: list[bool],
            image: list[bool] | None = None, seed: int = 0) -> fusion.FusionInputs:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(batch, 1000, generator=g) * 3, dim=-1)
    return fusion.FusionInputs(
        image_embed=torch.rand(batch, fusion.IMAGE_EMBED, generator=g), image_probs=probs,
        image_mask=torch.tensor(image if image is not None else [True] * batch),
        face_embed=torch.rand(batch, fusion.FACE_EMBED, generator=g),
        face_logits=torch.randn(batch, 7, generator=g) * 3,
        face_conf=torch.rand(batch, generator=g) * 0.8 + 0.1, face_mask=torch.tensor(face),
        voice_feats=torch.rand(batch, prosody.N_FEATURES, generator=g) * 100,
        voice_conf=torch.rand(batch, generator=g), voice_mask=torch.tensor(voice),
        text_feats=torch.rand(batch, text_affect.N_FEATURES, generator=g),
        text_conf=torch.rand(batch, generator=g), text_mask=torch.tensor(text),
    )


def test_default_fusion_is_the_calibrated_expert_mixture(vocabulary: SceneVocabulary) -> None:
    model = fusion.FusionModel(vocabulary).eval()
    inputs = _inputs(4, face=[True, True, False, True], voice=[True, False, True, True],
                     text=[True, True, True, False])
    with torch.no_grad():
        out = model(inputs)
    prior = torch.tensor([fusion.EMOTION_PRIOR[m] for m in fusion.EMOTION_MODALITIES])
    conf = torch.stack([inputs.face_conf, inputs.voice_conf, inputs.text_conf], dim=1)
    mask = torch.stack([inputs.face_mask, inputs.voice_mask, inputs.text_mask], dim=1)
    expected_w = prior * conf * mask
    expected_w = expected_w / expected_w.sum(1, keepdim=True)
    assert torch.allclose(out.emotion_weights, expected_w, atol=1e-5)
    mixture = (expected_w[..., None] * out.expert_probs).sum(1)
    assert torch.allclose(out.emotion_probs, mixture, atol=1e-5)
    assert torch.allclose(out.valence, (expected_w * out.expert_valence).sum(1), atol=1e-5)
    assert torch.allclose(out.emotion_probs.sum(-1), torch.ones(4), atol=1e-5)
    # The face expert is the face classifier's softmax, softened by its temperature.
    face = torch.softmax(inputs.face_logits / fusion.FACE_TEMPERATURE, dim=-1)
    assert torch.allclose(out.expert_probs[:, 0], face, atol=1e-6)


def test_absent_modalities_get_no_weight(vocabulary: SceneVocabulary) -> None:
    model = fusion.FusionModel(vocabulary).eval()
    inputs = _inputs(2, face=[False, False], voice=[False, True], text=[False, False],
                     image=[False, True])
    with torch.no_grad():
        out = model(inputs)
    assert torch.equal(out.emotion_weights[0], torch.zeros(3))  # nothing present: no weights
    assert not out.emotion_probs.isnan().any() and not out.scene_scores.isnan().any()
    assert torch.allclose(out.emotion_weights[1], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(out.emotion_probs[1], out.expert_probs[1, 1], atol=1e-5)
    assert float(out.scene_scores[0].max()) < 1e-4  # no frame, no face: no scene evidence


def test_default_scene_is_vocabulary_above_chance_or_face(vocabulary: SceneVocabulary) -> None:
    model = fusion.FusionModel(vocabulary).eval()
    inputs = _inputs(2, face=[True, False], voice=[False] * 2, text=[False] * 2)
    with torch.no_grad():
        out = model(inputs)
    expected = vocabulary.scores(inputs.image_probs, above_chance=True)
    assert torch.allclose(out.image_tag_scores, calibrate(expected, vocabulary.thresholds),
                          atol=1e-4)
    person = vocabulary.tags.index("person")
    others = [i for i in range(len(vocabulary.tags)) if i != person]
    assert torch.allclose(out.scene_evidence[:, others], expected[:, others], atol=1e-4)
    face = float(inputs.face_conf[0])
    noisy_or = 1 - (1 - float(expected[0, person])) * (1 - face)
    assert abs(float(out.scene_evidence[0, person]) - noisy_or) < 1e-4
    assert abs(float(out.scene_evidence[1, person]) - float(expected[1, person])) < 1e-4
    # Published scores are the evidence calibrated per tag: its threshold becomes 0.5.
    assert torch.allclose(out.scene_scores, calibrate(out.scene_evidence, vocabulary.thresholds))


def test_vocabulary_is_not_saved_and_old_checkpoints_still_load(vocabulary: SceneVocabulary,
                                                                 tmp_path: Path) -> None:
    """Classes and thresholds come from the vocabulary in use; checkpoints from before groups
    carried the class matrix (tag_matrix, tag_share), which is ignored on load."""
    model = fusion.FusionModel(vocabulary)
    assert not {"group_matrix", "tag_threshold"} & set(model.state_dict())
    path = tmp_path / "old.pt"
    fusion.save_checkpoint(model, path, {})
    blob = torch.load(path, weights_only=True)
    blob["state_dict"] |= {"tag_matrix": vocabulary.matrix,
                           "tag_share": vocabulary.matrix.mean(dim=0)}
    torch.save(blob, path)
    fusion.load_checkpoint(fusion.FusionModel(vocabulary), path)


def test_checkpoint_round_trip_and_errors(vocabulary: SceneVocabulary, tmp_path: Path) -> None:
    model = fusion.FusionModel(vocabulary)
    with torch.no_grad():
        model.emotion_head.bias.copy_(torch.arange(7.0))
    path = tmp_path / "fusion.pt"
    version = fusion.save_checkpoint(model, path, {"note": "test"})
    assert len(version) == 12 and version == fusion.checkpoint_version(path)
    fresh = fusion.FusionModel(vocabulary)
    assert fusion.load_checkpoint(fresh, path) == {"note": "test"}
    assert torch.equal(fresh.emotion_head.bias, torch.arange(7.0))

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read fusion checkpoint"):
        fusion.load_checkpoint(fresh, garbage)
    other = tmp_path / "other.pt"
    torch.save({"format": "something/else"}, other)
    with pytest.raises(ModelError, match="not an mmstream fusion checkpoint"):
        fusion.load_checkpoint(fresh, other)
    small = load_scene_vocabulary()
    first = small.group_tag < 3
    small = type(small)(tags=small.tags[:3], groups=small.groups[:, first],
                        group_tag=small.group_tag[first], thresholds=small.thresholds[:3])
    with pytest.raises(ModelError, match="trained for scene tags"):
        fusion.load_checkpoint(fusion.FusionModel(small), path)


def test_fusion_is_trainable_end_to_end(vocabulary: SceneVocabulary) -> None:
    """Gradients reach the gates, heads and expert calibrations (what `mmstream train` fits)."""
    model = fusion.FusionModel(vocabulary)
    out = model(_inputs(3, face=[True] * 3, voice=[True] * 3, text=[True] * 3))
    target = torch.tensor([EMOTIONS.index("sad")] * 3)
    torch.nn.functional.nll_loss(out.emotion_probs.log(), target).backward()
    for name in ("emotion_gate.weight", "emotion_head.weight", "emotion_log_prior",
                 "voice_expert.arousal_weight", "text_expert.linear.weight",
                 "face_log_temperature"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
