"""The motion library: many clips with sampling weights, queried in batches for full humanoid states.

All clips are concatenated into flat per-frame tensors on the library's device, so a query of n (clip, time) pairs
is a handful of gathers with no Python loop over samples. Per-frame velocities are precomputed by finite
differences (central inside a clip; one-sided at the ends of a non-looping clip; wrapped across the seam of a
looping clip) and interpolated like the positions.

Time inside a clip:
- non-looping clips clamp times to [0, duration] (so times before the start back-fill with the first frame);
- looping clips wrap times modulo the duration. The last frame runs into the first; the root's horizontal
  position is carried on by one cycle's displacement per wrap, so a looped walk keeps walking. A looping clip's
  pose, root height and root rotation must return to those of its first frame.

Objects: if any clip has an object trajectory, MotionState.object_pos/object_quat are tensors, with
`has_object` False (and an identity pose at the origin) for samples from clips without one; otherwise they are None.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import yaml

from coohoi import humanoid as hum
from coohoi.motion.amp_features import AMP_FEATURE_SIZE, amp_features
from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.kinematics import ForwardKinematics
from coohoi.rotations import heading_angle, quat_conjugate, quat_mul, quat_slerp, quat_to_exp_map

log = logging.getLogger(__name__)

DATASET_KEYS = ("clips",)
DATASET_ENTRY_KEYS = ("file", "weight")
DEFAULT_WEIGHT = 1.0
# A looping clip whose last frame is turned more than this (rad) from its first frame, after allowing for its
# per-frame turning speed, does not loop in heading; the library warns (it wraps position only).
LOOP_HEADING_TOLERANCE = 0.1


class MotionDatasetError(MotionFormatError):
    """A dataset yaml that cannot be loaded; the message names the file and the problem."""


@dataclass
class MotionState:
    """Humanoid states [n, ...] on the library's device and dtype. Angular velocity is world frame."""

    root_pos: torch.Tensor
    root_quat: torch.Tensor
    root_lin_vel: torch.Tensor
    root_ang_vel: torch.Tensor
    dof_pos: torch.Tensor
    dof_vel: torch.Tensor
    body_pos: torch.Tensor
    body_quat: torch.Tensor
    object_pos: torch.Tensor | None = None
    object_quat: torch.Tensor | None = None
    has_object: torch.Tensor | None = None  # [n] bool, only when object_pos is given

    @property
    def key_body_pos(self) -> torch.Tensor:
        return self.body_pos[..., list(hum.KEY_BODY_IDS), :]


def _wrap_angle(a: np.ndarray) -> np.ndarray:
    return np.arctan2(np.sin(a), np.cos(a))


def _loop_shift(root_pos: np.ndarray) -> np.ndarray:
    """Horizontal root displacement over one cycle of a looping clip: from frame 0 to the frame after the last.

    The seam step (last frame -> first frame of the next cycle) is the mean of the first and last frame steps."""
    seam_step = 0.5 * ((root_pos[-1] - root_pos[-2]) + (root_pos[1] - root_pos[0]))
    shift = root_pos[-1] - root_pos[0] + seam_step
    shift[2] = 0.0
    return shift


def _loop_heading_gap(clip: MotionClip) -> float:
    """Heading jump (rad) across a looping clip's seam beyond what its first and last steps turn."""
    heading = heading_angle(torch.from_numpy(clip.root_quat)).numpy()
    step = lambda a, b: float(_wrap_angle(np.array(b - a)))  # noqa: E731
    expected = 0.5 * (step(heading[-2], heading[-1]) + step(heading[0], heading[1]))
    return abs(step(heading[-1], heading[0]) - expected)


def _neighbours(x: np.ndarray, loop: bool, shift: np.ndarray | None = None):
    """Frames i-1 and i+1 for every frame i, and the step count between them (2 inside, 1 at clip ends)."""
    prev = np.concatenate((x[-1:] - (shift if shift is not None else 0) if loop else x[:1], x[:-1]))
    nxt = np.concatenate((x[1:], x[:1] + (shift if shift is not None else 0) if loop else x[-1:]))
    steps = np.full(len(x), 2.0)
    if not loop:
        steps[0] = steps[-1] = 1.0
    return prev, nxt, steps


def _quat_mul_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return quat_mul(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def _frame_velocities(clip: MotionClip, shift: np.ndarray):
    """Per-frame root linear and angular (world) velocity and DoF velocity by finite differences."""
    dt = 1.0 / clip.fps
    prev, nxt, steps = _neighbours(clip.root_pos, clip.loop, shift)
    lin_vel = (nxt - prev) / (steps[:, None] * dt)
    q_prev, q_next, _ = _neighbours(clip.root_quat, clip.loop)
    delta = _quat_mul_np(q_next, quat_conjugate(torch.from_numpy(q_prev)).numpy())
    ang_vel = quat_to_exp_map(torch.from_numpy(delta)).numpy() / (steps[:, None] * dt)
    d_prev, d_next, _ = _neighbours(clip.dof_pos, clip.loop)
    dof_vel = _wrap_angle(d_next - d_prev) / (steps[:, None] * dt)
    return lin_vel, ang_vel, dof_vel


class MotionLib:
    """Clips with sampling weights; batched states, AMP features and samples on one device."""

    def __init__(self, clips: list[MotionClip], weights: list[float] | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        if not clips:
            raise ValueError("MotionLib needs at least one clip")
        weights = [DEFAULT_WEIGHT] * len(clips) if weights is None else [float(w) for w in weights]
        if len(weights) != len(clips):
            raise ValueError(f"got {len(weights)} weights for {len(clips)} clips")
        if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"clip weights must be finite, non-negative and not all zero, got {weights}")
        for i, clip in enumerate(clips):
            clip.validate(clip.name or f"clip {i}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.clip_names = [clip.name or f"clip_{i}" for i, clip in enumerate(clips)]
        self.num_clips = len(clips)
        self.fk = ForwardKinematics(self.device, dtype)

        shifts = [_loop_shift(c.root_pos) if c.loop else np.zeros(3) for c in clips]
        for name, clip in zip(self.clip_names, clips):
            if clip.loop and _loop_heading_gap(clip) > LOOP_HEADING_TOLERANCE:
                log.warning("looping clip %s turns %.2f rad over a cycle; the library loops position only, so its "
                            "heading jumps at the seam", name, _loop_heading_gap(clip))
        velocities = [_frame_velocities(c, s) for c, s in zip(clips, shifts)]
        has_object = [c.object_pos is not None for c in clips]
        self.has_objects = any(has_object)

        tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), device=self.device).to(dtype)  # noqa: E731
        cat = lambda arrays: tensor(np.concatenate(arrays))  # noqa: E731
        self._root_pos = cat([c.root_pos for c in clips])
        self._root_quat = cat([c.root_quat / np.linalg.norm(c.root_quat, axis=-1, keepdims=True) for c in clips])
        self._dof_pos = cat([c.dof_pos for c in clips])
        self._root_lin_vel = cat([v[0] for v in velocities])
        self._root_ang_vel = cat([v[1] for v in velocities])
        self._dof_vel = cat([v[2] for v in velocities])
        if self.has_objects:
            identity = lambda c: np.tile([1.0, 0.0, 0.0, 0.0], (c.num_frames, 1))  # noqa: E731
            self._object_pos = cat([c.object_pos if c.object_pos is not None else np.zeros((c.num_frames, 3))
                                    for c in clips])
            self._object_quat = cat([c.object_quat if c.object_quat is not None else identity(c) for c in clips])

        num_frames = [c.num_frames for c in clips]
        self.clip_num_frames = torch.tensor(num_frames, dtype=torch.long, device=self.device)
        self.clip_start = torch.tensor(np.cumsum([0] + num_frames[:-1]), dtype=torch.long, device=self.device)
        self.clip_fps = tensor([c.fps for c in clips])
        self.clip_durations = tensor([c.duration for c in clips])
        self.clip_loop = torch.tensor([c.loop for c in clips], dtype=torch.bool, device=self.device)
        self.clip_has_object = torch.tensor(has_object, dtype=torch.bool, device=self.device)
        self._clip_shift = tensor(np.stack(shifts))
        self.clip_weights = tensor(weights) / sum(weights)

    # ---- construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_dataset(cls, path: str | Path, device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32) -> "MotionLib":
        """Load a yaml dataset: `clips: [{file: a.npz, weight: 1.0}, ...]`, files relative to the yaml."""
        path = Path(path)
        clips, weights = load_dataset(path)
        return cls(clips, weights, device=device, dtype=dtype)

    @classmethod
    def from_files(cls, paths: list[str | Path], weights: list[float] | None = None,
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> "MotionLib":
        return cls([MotionClip.load(p) for p in paths], weights, device=device, dtype=dtype)

    # ---- sampling -------------------------------------------------------------------------------------------
    def sample_clips(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n clip ids [n] drawn by weight."""
        device = generator.device if generator is not None else self.device
        ids = torch.multinomial(self.clip_weights.to(device), n, replacement=True, generator=generator)
        return ids.to(self.device)

    def sample_times(self, clip_ids: torch.Tensor, generator: torch.Generator | None = None,
                     truncate: float = 0.0) -> torch.Tensor:
        """Uniform times [n] in [0, duration - truncate] of each clip (0 where the clip is shorter than truncate)."""
        device = generator.device if generator is not None else self.device
        u = torch.rand(clip_ids.shape, generator=generator, device=device, dtype=self.dtype).to(self.device)
        return u * (self.clip_durations[clip_ids] - truncate).clamp_min(0.0)

    # ---- queries --------------------------------------------------------------------------------------------
    def state(self, clip_ids: torch.Tensor, times: torch.Tensor) -> MotionState:
        """Interpolated states at the given (clip, time) pairs; times in seconds, any shape [n]."""
        clip_ids = torch.as_tensor(clip_ids, dtype=torch.long, device=self.device)
        times = torch.as_tensor(times, dtype=self.dtype, device=self.device)
        duration = self.clip_durations[clip_ids]
        loop = self.clip_loop[clip_ids]
        num_frames = self.clip_num_frames[clip_ids]
        # Looping clips: whole cycles passed (negative before the start), and the time inside the current cycle.
        cycles = torch.where(loop, torch.floor(times / duration), torch.zeros_like(times))
        local_t = torch.where(loop, times - cycles * duration, times.clamp(min=0.0).minimum(duration))
        frame = local_t * self.clip_fps[clip_ids]
        last_start = torch.where(loop, num_frames - 1, num_frames - 2)
        i0 = torch.floor(frame).long().clamp(min=0).minimum(last_start)
        alpha = (frame - i0.to(self.dtype)).clamp(0.0, 1.0)
        wraps = i0 + 1 >= num_frames  # only looping clips step from the last frame into the first
        i1 = torch.where(wraps, torch.zeros_like(i0), i0 + 1)
        start = self.clip_start[clip_ids]
        f0, f1 = start + i0, start + i1

        a = alpha.unsqueeze(-1)
        shift = self._clip_shift[clip_ids]
        p1 = self._root_pos[f1] + wraps.unsqueeze(-1).to(self.dtype) * shift
        root_pos = torch.lerp(self._root_pos[f0], p1, a) + cycles.unsqueeze(-1) * shift
        root_quat = quat_slerp(self._root_quat[f0], self._root_quat[f1], alpha)
        d0 = self._dof_pos[f0]
        dof_pos = d0 + a * torch.remainder(self._dof_pos[f1] - d0 + torch.pi, 2 * torch.pi) - a * torch.pi
        lerp = lambda x: torch.lerp(x[f0], x[f1], a)  # noqa: E731
        body_pos, body_quat = self.fk(root_pos, root_quat, dof_pos)
        state = MotionState(root_pos, root_quat, lerp(self._root_lin_vel), lerp(self._root_ang_vel), dof_pos,
                            lerp(self._dof_vel), body_pos, body_quat)
        if self.has_objects:
            state.object_pos = torch.lerp(self._object_pos[f0], self._object_pos[f1] + wraps.unsqueeze(-1) * shift, a)
            state.object_pos = state.object_pos + cycles.unsqueeze(-1) * shift
            state.object_quat = quat_slerp(self._object_quat[f0], self._object_quat[f1], alpha)
            state.has_object = self.clip_has_object[clip_ids]
        return state

    def amp_features(self, clip_ids: torch.Tensor, times: torch.Tensor, history: int, dt: float) -> torch.Tensor:
        """AMP features [n, history, 125] at times t, t - dt, ..., t - (history - 1) dt (index 0 = newest)."""
        return self.state_and_amp_features(clip_ids, times, history, dt)[1]

    def state_and_amp_features(self, clip_ids: torch.Tensor, times: torch.Tensor, history: int,
                               dt: float) -> tuple[MotionState, torch.Tensor]:
        """The states [n] at times t and the AMP features [n, history, 125] of amp_features(), from one batched
        query (a reference start needs both)."""
        clip_ids = torch.as_tensor(clip_ids, dtype=torch.long, device=self.device)
        times = torch.as_tensor(times, dtype=self.dtype, device=self.device)
        offsets = dt * torch.arange(history, dtype=self.dtype, device=self.device)
        hist_times = times.unsqueeze(-1) - offsets  # [n, history]
        hist_ids = clip_ids.unsqueeze(-1).expand_as(hist_times)
        s = self.state(hist_ids.flatten(), hist_times.flatten())
        feats = amp_features(s.root_pos, s.root_quat, s.root_lin_vel, s.root_ang_vel, s.dof_pos, s.dof_vel,
                             s.key_body_pos)
        n = times.shape[0]
        newest = MotionState(**{f.name: None if getattr(s, f.name) is None
                                else getattr(s, f.name).unflatten(0, (n, history))[:, 0] for f in fields(MotionState)})
        return newest, feats.view(n, history, AMP_FEATURE_SIZE)

    def sample_amp_demo(self, n: int, history: int, dt: float,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """n demo AMP observations [n, history * 125] from weighted random (clip, time) pairs."""
        clip_ids = self.sample_clips(n, generator)
        times = self.sample_times(clip_ids, generator)
        return self.amp_features(clip_ids, times, history, dt).flatten(1)


def write_dataset(path: Path, entries: list[tuple[str, float]], comments: list[str]) -> Path:
    """Write a dataset yaml (load_dataset's format): the comment lines, then one entry (file, weight) per clip."""
    lines = [f"# {c}" for c in comments] + ["clips:"]
    lines += [f"  - {{file: {file}, weight: {weight}}}" for file, weight in entries]
    path.write_text("\n".join(lines) + "\n")
    return path


def load_dataset(path: Path) -> tuple[list[MotionClip], list[float]]:
    """Clips and weights listed by a dataset yaml; clear errors for missing files and bad weights."""
    if not path.is_file():
        raise MotionDatasetError(f"{path}: dataset file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MotionDatasetError(f"{path}: not valid yaml ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("clips"), list) or not doc["clips"]:
        raise MotionDatasetError(f"{path}: expected a mapping with a non-empty list under 'clips'")
    unknown = sorted(set(doc) - set(DATASET_KEYS))
    if unknown:
        raise MotionDatasetError(f"{path}: unknown keys {unknown} (allowed: {list(DATASET_KEYS)})")
    clips, weights = [], []
    for i, entry in enumerate(doc["clips"]):
        where = f"{path}: clips[{i}]"
        if isinstance(entry, str):
            entry = {"file": entry}
        if not isinstance(entry, dict) or "file" not in entry:
            raise MotionDatasetError(f"{where}: expected {{file: ..., weight: ...}}, got {entry!r}")
        unknown = sorted(set(entry) - set(DATASET_ENTRY_KEYS))
        if unknown:
            raise MotionDatasetError(f"{where}: unknown keys {unknown} (allowed: {list(DATASET_ENTRY_KEYS)})")
        weight = entry.get("weight", DEFAULT_WEIGHT)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight < 0:
            raise MotionDatasetError(f"{where}: weight must be a non-negative number, got {weight!r}")
        clip_path = path.parent / str(entry["file"])
        if not clip_path.is_file():
            raise MotionDatasetError(f"{where}: clip file {clip_path} not found")
        clips.append(MotionClip.load(clip_path))
        weights.append(float(weight))
    if sum(weights) <= 0:
        raise MotionDatasetError(f"{path}: clip weights are all zero")
    return clips, weights
