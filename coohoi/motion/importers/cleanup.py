"""What every importer does to a clip after converting it, so that imported clips are fit to train on.

    clip, notes = finish_clip(clip, ImportSettings(...), source="file.bvh")

In order: repeated frames collapsed, a T-pose start trimmed, `trim` applied, the DoF speeds checked (refused, or
filtered with `filter_speed`), the clip put on the ground (last, so that it grounds the final poses). Every change
is reported as a note (one line each); the largest DoF speed always is. A given frame rate (`fps`) replaces the
file's where the importer reads it (given_fps), before any resampling.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.kinematics import ForwardKinematics, lowest_foot_z
from coohoi.rotations import quat_rotate

GROUND_MODES = ("clip", "frame", "none")
# Largest DoF speed (rad/s) an imported clip may have. Our 16 shipped clips peak at 12.7 rad/s (walk_forward_1.6,
# right_knee; measured by finite differences at 30 fps), and human joints reach roughly 20-30 rad/s in fast motion.
# 50 rad/s is about 4x our clips and well above fast human motion, yet below what broken data produces: an Euler
# branch flip (a pi step) is 94 rad/s at 30 fps, a kept T-pose jump into the motion (about 1.5 rad) 180 rad/s at
# the 120 fps of CMU files.
MAX_DOF_SPEED = 50.0
# Repeated frames: every other frame-to-frame change is at most this share of the median of the others (real
# motion sampled evenly has similar consecutive changes; retargeting may leave solver noise on exact repeats) ...
REPEAT_RATIO = 0.05
# ... while the others move (rad or m per frame, largest over root position, rotation and DoFs): a still clip
# has nothing to collapse.
REPEAT_MIN_CHANGE = 1e-4
REPEAT_MIN_PAIRS = 4  # evidence needed: this many repeated pairs at least
# T-pose: both arms straight (shoulder-to-hand distance at least this share of the straight arm length) ...
TPOSE_STRAIGHT = 0.95
# ... and pointing sideways: the arm direction within about 25 degrees of the torso's lateral axis ...
TPOSE_COS = float(np.cos(np.radians(25.0)))
# ... followed by a jump into the motion: a hand moves this far (m, relative to the pelvis) in one frame. The
# hands of our clips move at most 7 cm per frame (lift, at 30 fps); leaving a T-pose they move 0.3 m or more.
TPOSE_JUMP = 0.2
GROUND_NOTE = 1e-4  # m: grounding shifts smaller than this are not worth a note


@dataclass
class ImportSettings:
    """Settings every importer takes (`coohoi motion import ... --fps --trim --ground ...`)."""

    fps: float | None = None  # the data's frame rate, overriding what the file says (None: the file's)
    ground: str = "clip"  # clip: the lowest foot contact point of the clip on the floor; frame: in every frame; none
    trim: tuple[str, str] = ("0", "0")  # cut at the start and the end: frames ("12") or seconds ("0.5s")
    trim_tpose: bool = True  # detect and cut a T-pose (calibration) start
    collapse_repeats: bool = True  # detect data stored at twice its rate (every frame repeated) and collapse it
    max_dof_speed: float | None = None  # rad/s refused (None: the module's default limit)
    filter_speed: bool = False  # True: filter DoF speed spikes instead of refusing the clip


_FK = ForwardKinematics(dtype=torch.float64)


def body_poses(clip: MotionClip) -> tuple[torch.Tensor, torch.Tensor]:
    """World body positions and rotations [T, 15, 3|4] of a clip (float64)."""
    as_t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64))  # noqa: E731
    return _FK(as_t(clip.root_pos), as_t(clip.root_quat), as_t(clip.dof_pos))


def select_frames(clip: MotionClip, keep) -> MotionClip:
    """The clip at these frames (an index array, a boolean mask or a slice), fps unchanged."""
    pick = lambda x: None if x is None else np.asarray(x)[keep]  # noqa: E731
    return replace(clip, root_pos=pick(clip.root_pos), root_quat=pick(clip.root_quat), dof_pos=pick(clip.dof_pos),
                   object_pos=pick(clip.object_pos), object_quat=pick(clip.object_quat), contacts=pick(clip.contacts))


def frame_changes(clip: MotionClip) -> np.ndarray:
    """Largest change [T - 1] between consecutive frames over root position (m), rotation and DoFs (rad)."""
    dot = np.abs((clip.root_quat[1:] * clip.root_quat[:-1]).sum(-1)).clip(0.0, 1.0)
    parts = (np.abs(np.diff(clip.root_pos, axis=0)).max(-1), 2 * np.arccos(dot),
             np.abs(np.diff(clip.dof_pos, axis=0)).max(-1))
    return np.max(parts, axis=0)


def repeated_phase(clip: MotionClip) -> int | None:
    """0 or 1 when every other frame repeats the one before it (frames p+1, p+3, ... are copies), else None."""
    d = frame_changes(clip)
    for phase in (0, 1):
        same, other = d[phase::2], d[1 - phase::2]
        if len(same) < REPEAT_MIN_PAIRS or not len(other):
            continue
        moving = float(np.median(other))
        if moving > REPEAT_MIN_CHANGE and same.max() <= REPEAT_RATIO * moving:
            return phase
    return None


def tpose_frames(clip: MotionClip) -> int:
    """How many leading frames are a T-pose (arms straight out sideways) followed by a jump into the motion."""
    pos, quat = body_poses(clip)

    torso = quat[:, hum.BODY_NAMES.index("torso")]
    is_t = np.ones(clip.num_frames, dtype=bool)
    for side, sign in (("right", -1.0), ("left", 1.0)):
        s, e, h = (hum.BODY_NAMES.index(f"{side}_{b}") for b in ("upper_arm", "lower_arm", "hand"))
        arm = (pos[:, h] - pos[:, s]).numpy()
        length = float(_FK.offsets[e].norm() + _FK.offsets[h].norm())
        lateral = quat_rotate(torso, torch.tensor([0.0, sign, 0.0], dtype=torch.float64).expand(len(torso), 3))
        dist = np.linalg.norm(arm, axis=-1)
        cos = (arm * lateral.numpy()).sum(-1) / np.maximum(dist, 1e-9)
        is_t &= (dist >= TPOSE_STRAIGHT * length) & (cos >= TPOSE_COS)
    n = int(np.argmin(is_t)) if not is_t.all() else clip.num_frames
    if n == 0 or n > clip.num_frames - 2:
        return 0
    hands = (pos[:, list(hum.HAND_BODY_IDS)] - pos[:, :1]).numpy()
    jump = np.linalg.norm(hands[n] - hands[n - 1], axis=-1).max()
    return n if jump >= TPOSE_JUMP else 0


def trim_frames(value: str, fps: float, source: str) -> int:
    """Frames to cut for a trim value: frames ("12") or seconds ("0.5s")."""
    text = str(value).strip()
    try:
        n = round(float(text[:-1]) * fps) if text.endswith("s") else int(text)
    except ValueError:
        raise MotionFormatError(f"{source}: trim {value!r} is neither frames ('12') nor seconds ('0.5s')") from None
    if n < 0:
        raise MotionFormatError(f"{source}: trim {value!r} must not be negative")
    return int(n)


def dof_speeds(clip: MotionClip) -> np.ndarray:
    """|DoF speed| [T - 1, 28] in rad/s by finite differences."""
    return np.abs(np.diff(clip.dof_pos, axis=0)) * clip.fps


def largest_dof_speed(clip: MotionClip) -> tuple[float, str, int]:
    """The largest DoF speed (rad/s), its DoF and the frame it starts from."""
    speed = dof_speeds(clip)
    frame, dof = np.unravel_index(int(speed.argmax()), speed.shape)
    return float(speed[frame, dof]), hum.DOF_NAMES[dof], int(frame)


def _interpolate(x: np.ndarray, bad: np.ndarray) -> np.ndarray:
    t = np.arange(len(x))
    return np.interp(t, t[~bad], x[~bad]) if (~bad).any() else x


def filter_dof(x: np.ndarray, step: float) -> tuple[np.ndarray, int]:
    """One DoF's angles [T] with no frame-to-frame change above `step`: outliers from a 5-frame median are
    replaced by interpolation, then remaining steps are spread over widening windows. Returns it and the number of
    frames replaced."""
    padded = np.pad(x, 2, mode="edge")
    median = np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=-1)
    bad = np.abs(x - median) > step
    out = _interpolate(x, bad)
    for width in range(1, len(x) + 1):
        jumps = np.flatnonzero(np.abs(np.diff(out)) > step)
        if not jumps.size:
            break
        for j in jumps:
            bad[max(0, j - width + 1):j + width + 1] = True
        out = _interpolate(x, bad)
    return out, int(bad.sum())


def _check_speed(clip: MotionClip, settings: ImportSettings, source: str, notes: list[str]) -> MotionClip:
    limit = MAX_DOF_SPEED if settings.max_dof_speed is None else float(settings.max_dof_speed)
    speed = dof_speeds(clip)
    offending = np.flatnonzero(speed.max(0) > limit)
    if offending.size and not settings.filter_speed:
        worst = ", ".join(f"{hum.DOF_NAMES[d]} {speed[:, d].max():.0f} rad/s at frame {int(speed[:, d].argmax())}"
                          for d in offending)
        raise MotionFormatError(f"{source}: physically impossible DoF speeds above {limit:g} rad/s: {worst} "
                                "(filter them with filter_speed / --filter-speed)")
    if offending.size:
        dof = clip.dof_pos.copy()
        step = limit / clip.fps * (1 - 1e-9)
        counts = []
        for d in offending:
            dof[:, d], n = filter_dof(dof[:, d], step)
            counts.append(f"{hum.DOF_NAMES[d]} ({n} frames)")
        clip = replace(clip, dof_pos=dof)
        notes.append(f"filtered DoF speeds above {limit:g} rad/s: {', '.join(counts)}")
    value, name, frame = largest_dof_speed(clip)
    notes.append(f"largest DoF speed {value:.1f} rad/s ({name}, frame {frame}); limit {limit:g} rad/s")
    return clip


def ground_clip(clip: MotionClip, mode: str = "clip") -> tuple[MotionClip, np.ndarray]:
    """The clip moved up or down so that its lowest foot point is at z = 0 over the clip (`clip`) or in every
    frame (`frame`); returns it and the height added [T]."""
    lowest = lowest_foot_z(*body_poses(clip)).numpy()
    shift = np.full_like(lowest, -lowest.min()) if mode == "clip" else -lowest
    up = np.stack((np.zeros_like(shift), np.zeros_like(shift), shift), -1)
    obj = None if clip.object_pos is None else clip.object_pos + up
    return replace(clip, root_pos=clip.root_pos + up, object_pos=obj), shift


def given_fps(file_fps: float, settings: ImportSettings | None, source: str) -> tuple[float, list[str]]:
    """The frame rate to read a file at: settings.fps when given (with a note), else the file's."""
    if settings is None or settings.fps is None:
        return file_fps, []
    if not float(settings.fps) > 0:
        raise MotionFormatError(f"{source}: fps must be positive, got {settings.fps}")
    return float(settings.fps), [f"frame rate set to {float(settings.fps):g} fps (the file says {file_fps:g})"]


def finish_clip(clip: MotionClip, settings: ImportSettings | None = None, source: str = "clip"
                ) -> tuple[MotionClip, list[str]]:
    """The clip after the clean-up steps of the module docstring, and a note per change."""
    s = settings or ImportSettings()
    if s.ground not in GROUND_MODES:
        raise ValueError(f"ground must be one of {GROUND_MODES}, got {s.ground!r}")
    notes: list[str] = []
    if s.collapse_repeats and (phase := repeated_phase(clip)) is not None:
        keep = np.ones(clip.num_frames, dtype=bool)
        keep[phase + 1::2] = False
        before = clip.num_frames
        clip = replace(select_frames(clip, keep), fps=clip.fps / 2)
        notes.append(f"every frame was repeated: collapsed {before} frames to {clip.num_frames}, "
                     f"{2 * clip.fps:g} fps to {clip.fps:g}")
    if s.trim_tpose and (n := tpose_frames(clip)):
        clip = select_frames(clip, slice(n, None))
        notes.append(f"trimmed a T-pose start: {n} frame(s)")
    start, end = (trim_frames(v, clip.fps, source) for v in s.trim)
    if start or end:
        if clip.num_frames - start - end < 2:
            raise MotionFormatError(f"{source}: trimming {start} + {end} frames leaves fewer than 2 of "
                                    f"{clip.num_frames}")
        clip = select_frames(clip, slice(start, clip.num_frames - end))
        notes.append(f"trimmed {start} frame(s) at the start and {end} at the end")
    clip = _check_speed(clip, s, source, notes)
    if s.ground != "none":
        clip, shift = ground_clip(clip, s.ground)
        if np.abs(shift).max() > GROUND_NOTE:
            what = f"by {100 * shift[0]:+.1f} cm" if s.ground == "clip" else \
                f"per frame, by {100 * shift.min():+.1f} to {100 * shift.max():+.1f} cm"
            notes.append(f"grounded the lowest foot point ({s.ground}): root moved {what}")
    return clip.validate(source), notes


__all__ = ["GROUND_MODES", "MAX_DOF_SPEED", "ImportSettings", "finish_clip", "given_fps", "ground_clip",
           "largest_dof_speed"]
