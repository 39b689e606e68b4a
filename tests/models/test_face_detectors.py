"""MTCNN (the shipped weights), five-point alignment and the detector choice, on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata

from mmstream.models import face_detect as fd
from mmstream.models import mtcnn_nets
from mmstream.models.face_align import TEMPLATE, align_gray, face_crop, similarity
from mmstream.models.faces import face_confidence, make_face_detector
from mmstream.models.mtcnn import MtcnnDetector, nms


@pytest.fixture(scope="module")
def mtcnn() -> MtcnnDetector:
    return MtcnnDetector()


def _rotated(image: np.ndarray, degrees: float, centre: tuple[float, float]) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


# --- fast: no weights -----------------------------------------------------------------------


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 99, 99, 0.9], [5, 5, 104, 104, 0.95], [200, 200, 260, 260, 0.5],
                      [10, 10, 40, 40, 0.8]], dtype=float)
    assert nms(boxes, 0.5).tolist() == [1, 3, 2]  # the small box overlaps little by IoU
    assert nms(boxes, 0.5, by_min=True).tolist() == [1, 2]  # ... but lies inside the best
    assert nms(np.zeros((0, 5)), 0.5).tolist() == []


def test_similarity_recovers_rotation_scale_and_shift() -> None:
    angle, scale, shift = np.deg2rad(25.0), 0.4, np.array([7.0, -3.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = np.array([[100.0, 120], [160, 118], [130, 150], [108, 180], [155, 178]])
    target = source @ (scale * rotation).T + shift
    matrix = similarity(source, target)
    assert np.allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    assert np.allclose(matrix[:, 2], shift, atol=1e-7)


def test_haar_and_mtcnn_confidence() -> None:
    assert face_confidence(fd.FaceBox(0, 0, 96, 96, 1.5)) == pytest.approx(0.5)  # Haar sum
    assert face_confidence(fd.FaceBox(0, 0, 24, 24, 0.9, probability=0.9)) == pytest.approx(0.45)
    assert face_confidence(fd.FaceBox(0, 0, 24, 24, -2.0)) == 0.0


def test_unknown_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="mtcnn, haar"):
        make_face_detector("yolo")
    assert isinstance(make_face_detector("haar"), fd.FaceDetector)


# --- slow: real weights ----------------------------------------------------------------------


@pytest.mark.slow
def test_shipped_weights_load_strictly() -> None:
    state = torch.load(mtcnn_nets.WEIGHTS_FILE, map_location="cpu", weights_only=True)
    assert set(state) == set(mtcnn_nets.MtcnnNets().state_dict())
    assert mtcnn_nets.WEIGHTS_FILE.stat().st_size < 2_000_000
    assert (mtcnn_nets.WEIGHTS_FILE.parent / "LICENSE-mtcnn.txt").is_file()


@pytest.mark.slow
def test_mtcnn_finds_the_astronaut_with_landmarks(mtcnn: MtcnnDetector) -> None:
    faces = mtcnn.detect(skdata.astronaut())
    assert len(faces) == 1
    face = faces[0]
    # Eileen Collins' face: around (177, 66) to (272, 161) in the 512×512 photo.
    assert 190 < face.x + face.w / 2 < 260 and 90 < face.y + face.h / 2 < 150
    assert face.probability is not None and face.probability > 0.95
    assert face.landmarks is not None
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    assert lx < nx < rx and mlx < mrx  # her left of the picture is her right eye: x order
    assert max(ly, ry) < ny < min(mly, mry)  # eyes above the nose above the mouth
    assert face.x <= min(lx, mlx) and max(rx, mrx) <= face.x + face.w


@pytest.mark.slow
def test_mtcnn_finds_the_half_hidden_face_haar_misses(mtcnn: MtcnnDetector) -> None:
    cameraman = skdata.camera()  # grey; his face is half behind the camera
    assert fd.FaceDetector().detect(cameraman) == []
    faces = mtcnn.detect(cameraman)
    assert len(faces) == 1
    assert 190 < faces[0].x + faces[0].w / 2 < 280 and 80 < faces[0].y + faces[0].h / 2 < 200


@pytest.mark.slow
@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_mtcnn_no_face_in_photos_without_people(mtcnn: MtcnnDetector, name: str) -> None:
    assert mtcnn.detect(getattr(skdata, name)()) == []


@pytest.mark.slow
def test_mtcnn_blank_and_large_frames(mtcnn: MtcnnDetector) -> None:
    assert mtcnn.detect(np.full((480, 640, 3), 128, dtype=np.uint8)) == []
    image = skdata.astronaut()
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)  # searched at 640, boxes in input px
    small, large = mtcnn.detect(image)[0], mtcnn.detect(big)[0]
    # the two are searched on different pyramids (512 px and 1024 px shrunk to 640): the same
    # face, within ~1 % of the frame (the mip-map pyramid moved x by 9 px here, from 2)
    assert abs(large.x - 2 * small.x) <= 12 and abs(large.w - 2 * small.w) <= 12


@pytest.mark.slow
def test_alignment_undoes_a_tilted_head(mtcnn: MtcnnDetector) -> None:
    image = skdata.astronaut()
    upright = face_crop(image, mtcnn.detect(image)[0]).astype(float)
    tilted_image = _rotated(image, 30.0, (225.0, 115.0))
    assert fd.FaceDetector().detect(tilted_image) == []  # the frontal cascade loses her
    tilted = mtcnn.detect(tilted_image)
    assert len(tilted) == 1
    aligned = face_crop(tilted_image, tilted[0]).astype(float)
    boxed = fd.crop_gray(tilted_image, tilted[0]).astype(float)
    assert aligned.shape == (64, 64)
    assert np.corrcoef(upright.ravel(), aligned.ravel())[0, 1] > 0.9
    assert np.corrcoef(upright.ravel(), boxed.ravel())[0, 1] < 0.5  # without alignment


@pytest.mark.slow
def test_aligned_landmarks_land_on_the_template(mtcnn: MtcnnDetector) -> None:
    image = skdata.astronaut()
    face = mtcnn.detect(image)[0]
    crop = align_gray(image, np.asarray(face.landmarks), size=64)
    again = mtcnn.detect(np.repeat(cv2.resize(crop, (256, 256))[..., None], 3, axis=2))
    assert len(again) == 1 and again[0].landmarks is not None
    found = np.asarray(again[0].landmarks) / 256.0
    assert np.abs(found - TEMPLATE).max() < 0.06
