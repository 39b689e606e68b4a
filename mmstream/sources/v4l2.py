"""The V4L2 cameras of this machine, asked the kernel directly (no v4l-utils needed).

For each `/dev/video*` node that can capture video: its card and driver names, and the pixel
formats with the frame sizes the driver offers for each (what `camera` sources can ask for with
`width`/`height`). Read with three ioctls: VIDIOC_QUERYCAP, VIDIOC_ENUM_FMT and
VIDIOC_ENUM_FRAMESIZES. Metadata nodes (a second /dev/video per webcam on recent kernels) are
skipped, and a node that cannot be opened is listed with the reason.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

VIDIOC_QUERYCAP = 0x80685600
VIDIOC_ENUM_FMT = 0xC0405602
VIDIOC_ENUM_FRAMESIZES = 0xC02C564A
CAP_VIDEO_CAPTURE = 0x00000001
CAP_DEVICE_CAPS = 0x80000000
BUF_TYPE_VIDEO_CAPTURE = 1
FRMSIZE_DISCRETE, FRMSIZE_CONTINUOUS, FRMSIZE_STEPWISE = 1, 2, 3
MAX_ENTRIES = 64  # a driver listing more formats or sizes than this is not believed


@dataclass
class CameraFormat:
    fourcc: str  # e.g. MJPG, YUYV
    description: str
    sizes: list[str] = field(default_factory=list)  # "640x480", or "16x16-4096x2160" ranges


@dataclass
class Camera:
    path: str
    card: str = ""
    driver: str = ""
    formats: list[CameraFormat] = field(default_factory=list)
    error: str = ""  # why it could not be read (permissions, busy)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def _query_caps(fd: int) -> tuple[str, str, int]:
    data = fcntl.ioctl(fd, VIDIOC_QUERYCAP, bytearray(104))
    driver, card = _text(data[0:16]), _text(data[16:48])
    capabilities, device_caps = struct.unpack_from("<II", data, 84)
    caps = device_caps if capabilities & CAP_DEVICE_CAPS else capabilities
    return card, driver, caps


def _enumerate(fd: int, request: int, size: int, prefix: bytes) -> list[bytes]:
    found: list[bytes] = []
    for index in range(MAX_ENTRIES):
        buffer = bytearray(size)
        struct.pack_into("<I", buffer, 0, index)
        buffer[4:4 + len(prefix)] = prefix
        try:
            found.append(bytes(fcntl.ioctl(fd, request, buffer)))
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # past the last entry
                break
            raise
    return found


def _sizes(fd: int, pixelformat: int) -> list[str]:
    sizes = []
    for entry in _enumerate(fd, VIDIOC_ENUM_FRAMESIZES, 44, struct.pack("<I", pixelformat)):
        kind, *values = struct.unpack_from("<IIIIIII", entry, 8)
        if kind == FRMSIZE_DISCRETE:
            sizes.append(f"{values[0]}x{values[1]}")
        elif kind in (FRMSIZE_CONTINUOUS, FRMSIZE_STEPWISE):
            min_w, max_w, _, min_h, max_h, _ = values
            sizes.append(f"{min_w}x{min_h}-{max_w}x{max_h}")
            break  # one range describes them all
    return sizes


def _formats(fd: int) -> list[CameraFormat]:
    formats = []
    for entry in _enumerate(fd, VIDIOC_ENUM_FMT, 64, struct.pack("<I", BUF_TYPE_VIDEO_CAPTURE)):
        description = _text(entry[12:44])
        (pixelformat,) = struct.unpack_from("<I", entry, 44)
        fourcc = struct.pack("<I", pixelformat).decode(errors="replace").strip()
        formats.append(CameraFormat(fourcc, description, _sizes(fd, pixelformat)))
    return formats


def describe_camera(path: Path) -> Camera | None:
    """The camera at `path`, or None when the node is not a video capture device."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        return Camera(str(path), error=exc.strerror or str(exc))
    try:
        try:
            card, driver, caps = _query_caps(fd)
        except OSError:
            return None  # not a V4L2 device at all
        if not caps & CAP_VIDEO_CAPTURE:
            return None  # a metadata or output node
        return Camera(str(path), card, driver, _formats(fd))
    except OSError as exc:
        return Camera(str(path), card, driver, error=exc.strerror or str(exc))
    finally:
        os.close(fd)


def list_cameras(dev: Path = Path("/dev")) -> list[Camera]:
    nodes = sorted(dev.glob("video*"), key=lambda p: (len(p.name), p.name))
    return [camera for camera in map(describe_camera, nodes) if camera is not None]
