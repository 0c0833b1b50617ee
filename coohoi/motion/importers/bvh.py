"""BVH motion files (CMU-style hierarchy), parsed here and retargeted onto our humanoid.

A BVH file has a HIERARCHY (ROOT / JOINT blocks with OFFSET, CHANNELS and End Site) and a MOTION section
(`Frames: N`, `Frame Time: dt`, then N lines of channel values). Rotation channels apply in the order listed
(e.g. `Zrotation Xrotation Yrotation` means R = Rz Rx Ry), angles in degrees. The CMU files are y up and in
inches times a scale factor; `import_bvh` turns them z up and scales them to our height.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.importers.retarget import RetargetConfig, retarget

VALID_CHANNELS = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
# Our retarget points and the BVH joint names that can supply them, first match wins (CMU names first).
# "<joint>/end" is the joint's End Site.
DEFAULT_JOINT_MAP: dict[str, tuple[str, ...]] = {
    "pelvis": ("Hips", "hip", "pelvis"),
    "torso": ("Spine", "Spine1", "abdomen", "chest"),
    "head": ("Neck1", "Neck", "neck"),
    "head_top": ("Head", "head"),
    "right_upper_arm": ("RightArm", "RightUpArm", "rShldr", "RightShoulder"),
    "right_lower_arm": ("RightForeArm", "RightLowArm", "rForeArm"),
    "right_hand": ("RightHand", "rHand"),
    "left_upper_arm": ("LeftArm", "LeftUpArm", "lShldr", "LeftShoulder"),
    "left_lower_arm": ("LeftForeArm", "LeftLowArm", "lForeArm"),
    "left_hand": ("LeftHand", "lHand"),
    "right_thigh": ("RightUpLeg", "rThigh", "RightHip"),
    "right_shin": ("RightLeg", "rShin", "RightKnee"),
    "right_foot": ("RightFoot", "rFoot", "RightAnkle"),
    "right_toe": ("RightToeBase", "RightToe", "RightFoot/end"),
    "left_thigh": ("LeftUpLeg", "lThigh", "LeftHip"),
    "left_shin": ("LeftLeg", "lShin", "LeftKnee"),
    "left_foot": ("LeftFoot", "lFoot", "LeftAnkle"),
    "left_toe": ("LeftToeBase", "LeftToe", "LeftFoot/end"),
}
# y-up (BVH) to z-up (ours): x stays, y becomes z, z becomes -y.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass
class BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    channel_start: int = 0
    is_end: bool = False


@dataclass
class Bvh:
    joints: list[BvhJoint]
    frame_time: float
    motion: np.ndarray  # [T, num_channels]

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def index(self, name: str) -> int:
        for i, j in enumerate(self.joints):
            if j.name == name:
                return i
        raise KeyError(name)


def _axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(angle), np.zeros_like(angle)
    rows = {
        "X": ((o, z, z), (z, c, -s), (z, s, c)),
        "Y": ((c, z, s), (z, o, z), (-s, z, c)),
        "Z": ((c, -s, z), (s, c, z), (z, z, o)),
    }[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def parse_bvh(path: str | Path) -> Bvh:
    path = Path(path)
    try:
        text = path.read_text(errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise MotionFormatError(f"{path}: cannot read as text ({exc})") from exc
    tokens = text.split()
    pos = 0

    def fail(msg: str):
        raise MotionFormatError(f"{path}: {msg}")

    def take(what: str) -> str:
        nonlocal pos
        if pos >= len(tokens):
            fail(f"file ends early (expected {what})")
        pos += 1
        return tokens[pos - 1]

    def expect(keyword: str) -> None:
        tok = take(repr(keyword))
        if tok != keyword:
            fail(f"expected {keyword!r}, found {tok!r}")

    def number(what: str) -> float:
        tok = take(what)
        try:
            value = float(tok)
        except ValueError:
            fail(f"expected a number for {what}, found {tok!r}")
        if not np.isfinite(value):
            fail(f"{what} is not finite")
        return value

    joints: list[BvhJoint] = []
    num_channels = 0

    def parse_joint(name: str, parent: int, is_end: bool = False) -> None:
        nonlocal num_channels
        expect("{")
        expect("OFFSET")
        offset = np.array([number("OFFSET") for _ in range(3)])
        joint = BvhJoint(name, parent, offset, is_end=is_end)
        joints.append(joint)
        me = len(joints) - 1
        if is_end:
            expect("}")
            return
        expect("CHANNELS")
        count_tok = take("channel count")
        if not count_tok.isdigit() or not 0 < int(count_tok) <= 6:
            fail(f"joint {name}: bad channel count {count_tok!r}")
        joint.channels = [take("channel name") for _ in range(int(count_tok))]
        bad = [c for c in joint.channels if c not in VALID_CHANNELS]
        if bad or len(set(joint.channels)) != len(joint.channels):
            fail(f"joint {name}: bad channels {joint.channels}")
        joint.channel_start = num_channels
        num_channels += len(joint.channels)
        while True:
            tok = take("JOINT, End or }")
            if tok == "}":
                return
            if tok == "JOINT":
                parse_joint(take("joint name"), me)
            elif tok == "End":
                expect("Site")
                parse_joint(f"{name}/end", me, is_end=True)
            else:
                fail(f"joint {name}: unexpected {tok!r}")

    expect("HIERARCHY")
    expect("ROOT")
    parse_joint(take("root name"), -1)
    if tokens[pos:pos + 1] == ["ROOT"]:
        fail("only one ROOT is supported")
    expect("MOTION")
    expect("Frames:")
    frames_tok = take("frame count")
    if not frames_tok.isdigit() or int(frames_tok) < 2:
        fail(f"need at least 2 frames, found Frames: {frames_tok}")
    num_frames = int(frames_tok)
    expect("Frame")
    expect("Time:")
    frame_time = number("Frame Time")
    if frame_time <= 0:
        fail(f"Frame Time must be positive, got {frame_time}")
    values = tokens[pos:]
    expected = num_frames * num_channels
    if len(values) < expected:
        fail(f"truncated MOTION: {num_frames} frames x {num_channels} channels need {expected} numbers, "
             f"found {len(values)}")
    if len(values) > expected:
        fail(f"MOTION has {len(values) - expected} numbers more than {num_frames} frames x {num_channels} channels")
    try:
        motion = np.array(values, dtype=np.float64).reshape(num_frames, num_channels)
    except ValueError as exc:
        fail(f"non-numeric MOTION data ({exc})")
    if not np.all(np.isfinite(motion)):
        fail("MOTION data contains NaN or infinity")
    if num_channels == 0 or not any(c.endswith("position") for c in joints[0].channels):
        fail("the root joint needs position channels")
    return Bvh(joints, frame_time, motion)


def global_positions(bvh: Bvh) -> np.ndarray:
    """World positions [T, J, 3] of every joint (and End Site) in the file's units and axes."""
    t = bvh.motion.shape[0]
    rot = [None] * len(bvh.joints)
    pos = [None] * len(bvh.joints)
    for i, j in enumerate(bvh.joints):
        values = {c: bvh.motion[:, j.channel_start + k] for k, c in enumerate(j.channels)}
        local_rot = np.broadcast_to(np.eye(3), (t, 3, 3))
        for c in j.channels:
            if c.endswith("rotation"):
                local_rot = local_rot @ _axis_rotation(c[0], np.radians(values[c]))
        if any(c.endswith("position") for c in j.channels):
            translation = np.stack([values.get(f"{a}position", np.full(t, j.offset[k])) for k, a in enumerate("XYZ")], -1)
        else:
            translation = np.broadcast_to(j.offset, (t, 3))
        if j.parent < 0:
            pos[i], rot[i] = translation, local_rot
        else:
            pos[i] = pos[j.parent] + np.einsum("tij,tj->ti", rot[j.parent], translation)
            rot[i] = rot[j.parent] @ local_rot
    return np.stack(pos, axis=1)


def map_points(bvh: Bvh, positions: np.ndarray, joint_map: dict[str, tuple[str, ...]] | None = None,
               source: str = "bvh") -> dict[str, np.ndarray]:
    joint_map = joint_map or DEFAULT_JOINT_MAP
    names = [j.name for j in bvh.joints]
    points = {}
    for ours, candidates in joint_map.items():
        for cand in candidates:
            if cand in names:
                points[ours] = positions[:, names.index(cand)]
                break
    missing = [k for k in joint_map if k not in points and not k.endswith(("_toe", "_top"))]
    if missing:
        raise MotionFormatError(f"{source}: no BVH joint found for {missing} (looked for "
                                f"{ {k: joint_map[k] for k in missing} }; joints in file: {names})")
    return points


def import_bvh(path: str | Path, up_axis: str = "y", retarget_cfg: RetargetConfig | None = None,
               joint_map: dict[str, tuple[str, ...]] | None = None, loop: bool = False,
               name: str | None = None) -> tuple[MotionClip, dict]:
    """Parse, convert to z up, scale and retarget a BVH file; returns our clip and the fit statistics."""
    path = Path(path)
    bvh = parse_bvh(path)
    positions = global_positions(bvh)
    if up_axis == "y":
        positions = positions @ Y_UP_TO_Z_UP.T
    elif up_axis != "z":
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    points = map_points(bvh, positions, joint_map, str(path))
    clip, stats = retarget(points, bvh.fps, retarget_cfg, name=name or path.stem, source=str(path))
    clip.loop = loop
    return clip, stats


def write_bvh(path: str | Path, joints: list[BvhJoint], frame_time: float, values: list[np.ndarray | None]) -> None:
    """Write a hierarchy as BVH; values[i] holds joint i's channel values [T, len(channels)] (None for End Sites).
    Joints may be listed in any order with parents before children; the file lists them depth first."""
    lines = ["HIERARCHY"]
    children = {i: [k for k, j in enumerate(joints) if j.parent == i] for i in range(len(joints))}
    order: list[int] = []
    fmt = lambda v: " ".join(f"{x:.6f}" for x in v)  # noqa: E731

    def emit(i: int, depth: int) -> None:
        j, pad = joints[i], "  " * depth
        if j.is_end:
            lines.extend([f"{pad}End Site", f"{pad}{{", f"{pad}  OFFSET {fmt(j.offset)}", f"{pad}}}"])
            return
        order.append(i)
        lines.append(f"{pad}{'ROOT' if j.parent < 0 else 'JOINT'} {j.name}")
        lines.extend([f"{pad}{{", f"{pad}  OFFSET {fmt(j.offset)}",
                      f"{pad}  CHANNELS {len(j.channels)} {' '.join(j.channels)}"])
        for c in children[i]:
            emit(c, depth + 1)
        lines.append(f"{pad}}}")

    emit(0, 0)
    motion = np.concatenate([values[i] for i in order], axis=1)
    lines += ["MOTION", f"Frames: {motion.shape[0]}", f"Frame Time: {frame_time:.8f}"]
    lines += [fmt(row) for row in motion]
    Path(path).write_text("\n".join(lines) + "\n")
