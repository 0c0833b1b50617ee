"""The coohoi clip format: one motion of our 28-DoF humanoid, stored as an uncompressed-or-compressed `.npz`.

Keys (T frames):
    format        str, "coohoi-clip-1"
    fps           float, frames per second (> 0)
    root_pos      float [T, 3], world position of the pelvis, metres, z up
    root_quat     float [T, 4], pelvis rotation, (w, x, y, z)
    dof_pos       float [T, 28], hinge angles in radians, reference DoF order (coohoi.humanoid.DOF_NAMES)
    loop          bool, whether the last frame runs on into the first
  optional:
    object_pos    float [T, 3], carried object's centre
    object_quat   float [T, 4], its rotation, (w, x, y, z)
    object_size   float [3], its full extents, metres
    contacts      float [T, 4], 1 where a key body (right hand, left hand, right foot, left foot) is in contact

Velocities are not stored: the motion library takes finite differences. Loading never unpickles.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coohoi import humanoid as hum

CLIP_FORMAT = "coohoi-clip-1"
_OPTIONAL = ("object_pos", "object_quat", "object_size", "contacts")
# Largest array an .npz member may hold (an hour of dof_pos at 120 fps is 97 MB), and the bytes read to find its
# header (numpy writes at most 64 KiB of header).
MAX_ARRAY_BYTES = 1 << 30
MAX_HEADER_BYTES = 1 << 17


class MotionFormatError(ValueError):
    """A motion file that cannot be read as a clip; the message names the file and the problem."""


def _check_members(path: Path) -> None:
    """Refuse an .npz whose array headers declare more than their members hold, or more than MAX_ARRAY_BYTES, before
    numpy allocates what they declare."""
    from coohoi.motion.importers.safe_load import check_declared_size, read_npy_header

    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                header = io.BytesIO(member.read(MAX_HEADER_BYTES))
            source = f"{path}: member {info.filename!r}"
            shape, dtype = read_npy_header(header, source)
            check_declared_size(shape, dtype, min(info.file_size - header.tell(), MAX_ARRAY_BYTES), source)


def read_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz file, never unpickling; an unreadable file raises MotionFormatError naming it."""
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        if isinstance(exc, MotionFormatError):
            raise
        raise MotionFormatError(f"{path}: not a readable {what} ({' '.join(str(exc).split())[:200]})") from exc


@dataclass
class MotionClip:
    fps: float
    root_pos: np.ndarray
    root_quat: np.ndarray
    dof_pos: np.ndarray
    loop: bool = False
    name: str = ""
    object_pos: np.ndarray | None = None
    object_quat: np.ndarray | None = None
    object_size: np.ndarray | None = None
    contacts: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.root_pos.shape[0])

    @property
    def duration(self) -> float:
        """Seconds covered: (T - 1) / fps for a clip, T / fps for a loop (the last frame runs into the first)."""
        return (self.num_frames if self.loop else self.num_frames - 1) / self.fps

    def validate(self, source: str = "clip") -> "MotionClip":
        def fail(msg: str):
            raise MotionFormatError(f"{source}: {msg}")

        if not np.isfinite(self.fps) or self.fps <= 0:
            fail(f"fps must be positive, got {self.fps}")
        t = self.root_pos.shape[0] if self.root_pos.ndim == 2 else -1
        if t < 2:
            fail(f"root_pos must be [T >= 2, 3], got shape {self.root_pos.shape}")
        expected = {"root_pos": (t, 3), "root_quat": (t, 4), "dof_pos": (t, hum.NUM_DOFS),
                    "object_pos": (t, 3), "object_quat": (t, 4), "object_size": (3,), "contacts": (t, 4)}
        for key, shape in expected.items():
            value = getattr(self, key)
            if value is None:
                continue
            if value.shape != shape:
                fail(f"{key} must have shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                fail(f"{key} contains NaN or infinity")
        norms = np.linalg.norm(self.root_quat, axis=-1)
        if np.any(np.abs(norms - 1) > 1e-3):
            fail("root_quat must hold unit quaternions (w, x, y, z)")
        if (self.object_pos is None) != (self.object_quat is None):
            fail("object_pos and object_quat come together")
        return self

    def save(self, path: str | Path) -> None:
        self.validate(str(path))
        arrays = {"format": np.array(CLIP_FORMAT), "fps": np.array(float(self.fps)), "loop": np.array(bool(self.loop)),
                  "root_pos": self.root_pos, "root_quat": self.root_quat, "dof_pos": self.dof_pos}
        arrays.update({k: getattr(self, k) for k in _OPTIONAL if getattr(self, k) is not None})
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "MotionClip":
        path = Path(path)
        contents = read_npz(path, ".npz clip")
        if str(contents.get("format", "")) != CLIP_FORMAT:
            raise MotionFormatError(f"{path}: missing or unknown 'format' (expected {CLIP_FORMAT!r})")
        missing = [k for k in ("fps", "root_pos", "root_quat", "dof_pos") if k not in contents]
        if missing:
            raise MotionFormatError(f"{path}: missing keys {missing}")
        not_real = [k for k in ("fps", "root_pos", "root_quat", "dof_pos", *_OPTIONAL)
                    if k in contents and np.asarray(contents[k]).dtype.kind not in "biuf"]
        if not_real:
            raise MotionFormatError(f"{path}: {', '.join(not_real)} must hold real numbers, got dtype "
                                    f"{', '.join(str(np.asarray(contents[k]).dtype) for k in not_real)}")
        as_float = lambda k: np.asarray(contents[k], dtype=np.float64) if k in contents else None  # noqa: E731
        try:
            clip = cls(
                fps=float(contents["fps"]), root_pos=as_float("root_pos"), root_quat=as_float("root_quat"),
                dof_pos=as_float("dof_pos"), loop=bool(contents.get("loop", False)), name=path.stem,
                **{k: as_float(k) for k in _OPTIONAL},
            )
        except (TypeError, ValueError) as exc:
            raise MotionFormatError(f"{path}: non-numeric data ({' '.join(str(exc).split())[:200]})") from exc
        return clip.validate(str(path))
