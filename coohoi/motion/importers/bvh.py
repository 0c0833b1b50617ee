"""BVH motion files (CMU-style hierarchy), parsed here and retargeted onto our humanoid; and our clips as BVH.

A BVH file has a HIERARCHY (ROOT / JOINT blocks with OFFSET, CHANNELS and End Site) and a MOTION section
(`Frames: N`, `Frame Time: dt`, then N lines of channel values). Rotation channels apply in the order listed
(e.g. `Zrotation Xrotation Yrotation` means R = Rz Rx Ry), angles in degrees. The CMU files are y up and in
inches times a scale factor; `import_bvh` turns them z up and scales them to our height.

Joint names are matched to our points through `DEFAULT_JOINT_MAP` (CMU, Mixamo and Biped names), also after
stripping a rig prefix (`mixamorig:Hips`, `Character1_Hips`), or through a YAML joint map (`load_joint_map`).
A file whose skeleton is ours (`export_bvh`: our body names and offsets) is converted directly, without retargeting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.importers.cleanup import ImportSettings, finish_clip, given_fps
from coohoi.motion.importers.retarget import MARKERS, TARGET_POINTS, RetargetConfig, _matrix_to_quat, retarget
from coohoi.motion.kinematics import _skeleton, joint_quats_to_dof
from coohoi.rotations import quat_to_euler_xyz

VALID_CHANNELS = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
# Our retarget points and the BVH joint names that can supply them, first match wins (CMU names first, then
# Mixamo, then 3ds Max Biped after its `Bip01_` prefix is stripped). "<joint>/end" is the joint's End Site.
# Names are compared as written, then without a rig prefix, then ignoring case.
DEFAULT_JOINT_MAP: dict[str, tuple[str, ...]] = {
    "pelvis": ("Hips", "hip", "pelvis"),
    "torso": ("Spine", "Spine1", "abdomen", "chest"),
    "head": ("Neck1", "Neck", "neck"),
    "head_top": ("Head", "head"),
    "right_upper_arm": ("RightArm", "RightUpArm", "rShldr", "R_UpperArm", "RightShoulder"),
    "right_lower_arm": ("RightForeArm", "RightLowArm", "rForeArm", "R_Forearm"),
    "right_hand": ("RightHand", "rHand", "R_Hand"),
    "left_upper_arm": ("LeftArm", "LeftUpArm", "lShldr", "L_UpperArm", "LeftShoulder"),
    "left_lower_arm": ("LeftForeArm", "LeftLowArm", "lForeArm", "L_Forearm"),
    "left_hand": ("LeftHand", "lHand", "L_Hand"),
    "right_thigh": ("RightUpLeg", "rThigh", "R_Thigh", "RightHip"),
    "right_shin": ("RightLeg", "rShin", "R_Calf", "RightKnee"),
    "right_foot": ("RightFoot", "rFoot", "R_Foot", "RightAnkle"),
    "right_toe": ("RightToeBase", "RightToe", "R_Toe0", "RightFoot/end"),
    "left_thigh": ("LeftUpLeg", "lThigh", "L_Thigh", "LeftHip"),
    "left_shin": ("LeftLeg", "lShin", "L_Calf", "LeftKnee"),
    "left_foot": ("LeftFoot", "lFoot", "L_Foot", "LeftAnkle"),
    "left_toe": ("LeftToeBase", "LeftToe", "L_Toe0", "LeftFoot/end"),
}
OPTIONAL_POINTS = ("right_toe", "left_toe", "head_top")  # markers: retargeting works without them
# y-up (BVH) to z-up (ours): x stays, y becomes z, z becomes -y.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# A file's skeleton is ours when its body offsets, scaled to metres, are within this of our MJCF's (export_bvh
# writes 6 decimals: 1e-6 m in metres, far below this; a different rig differs by centimetres).
OWN_SKELETON_TOLERANCE = 1e-4
# Rotation channels that are exactly our x, y, z hinge chain, in each up axis: y up turns our y axis into -Z, so
# R = Rx(a) Ry(b) Rz(c) is written Xrotation a, Zrotation -b, Yrotation c.
HINGE_CHANNELS = {"y": (("Xrotation", "Zrotation", "Yrotation"), (1.0, -1.0, 1.0)),
                  "z": (("Xrotation", "Yrotation", "Zrotation"), (1.0, 1.0, 1.0))}
POSITION_CHANNELS = ["Xposition", "Yposition", "Zposition"]
MAX_DEPTH = 200  # joints nested deeper than this are refused (the parser recurses; real rigs nest about 10 deep)


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

    def parse_joint(name: str, parent: int, is_end: bool = False, depth: int = 0) -> None:
        nonlocal num_channels
        if depth > MAX_DEPTH:
            fail(f"joint {name} is nested too deep (more than {MAX_DEPTH} levels)")
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
        if not (count_tok.isascii() and count_tok.isdigit()) or not 0 < int(count_tok) <= 6:
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
                parse_joint(take("joint name"), me, depth=depth + 1)
            elif tok == "End":
                expect("Site")
                parse_joint(f"{name}/end", me, is_end=True, depth=depth + 1)
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
    if not (frames_tok.isascii() and frames_tok.isdigit()) or int(frames_tok) < 2:
        fail(f"need at least 2 frames, found Frames: {frames_tok}")
    num_frames = int(frames_tok)
    expect("Frame")
    expect("Time:")
    frame_time = number("Frame Time")
    if frame_time <= 0 or not np.isfinite(1.0 / frame_time):
        fail(f"Frame Time must be positive and give a finite frame rate, got {frame_time}")
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


def local_rotations(bvh: Bvh) -> list[np.ndarray]:
    """Each joint's rotation [T, 3, 3] relative to its parent, in the file's axes (identity for End Sites)."""
    t = bvh.motion.shape[0]
    out = []
    for j in bvh.joints:
        rot = np.broadcast_to(np.eye(3), (t, 3, 3))
        for k, c in enumerate(j.channels):
            if c.endswith("rotation"):
                rot = rot @ _axis_rotation(c[0], np.radians(bvh.motion[:, j.channel_start + k]))
        out.append(rot)
    return out


def _root_translation(bvh: Bvh, j: BvhJoint) -> np.ndarray:
    t = bvh.motion.shape[0]
    values = {c: bvh.motion[:, j.channel_start + k] for k, c in enumerate(j.channels)}
    if any(c.endswith("position") for c in j.channels):
        return np.stack([values.get(f"{a}position", np.full(t, j.offset[k])) for k, a in enumerate("XYZ")], -1)
    return np.broadcast_to(j.offset, (t, 3))


def global_positions(bvh: Bvh) -> np.ndarray:
    """World positions [T, J, 3] of every joint (and End Site) in the file's units and axes."""
    local = local_rotations(bvh)
    rot = [None] * len(bvh.joints)
    pos = [None] * len(bvh.joints)
    for i, j in enumerate(bvh.joints):
        translation = _root_translation(bvh, j)
        if j.parent < 0:
            pos[i], rot[i] = translation, local[i]
        else:
            pos[i] = pos[j.parent] + np.einsum("tij,tj->ti", rot[j.parent], translation)
            rot[i] = rot[j.parent] @ local[i]
    return np.stack(pos, axis=1)


def strip_prefixes(names: list[str]) -> tuple[list[str], list[str]]:
    """Names without rig prefixes, and the prefixes removed: anything up to and including each name's last ':'
    (`mixamorig:Hips`), then a `<prefix>_` that every joint shares (`Character1_Hips`, `Bip01_L_Thigh`)."""
    removed = {n[:n.rindex(":") + 1] for n in names if ":" in n}
    bare = [n.rsplit(":", 1)[-1] if ":" in n.split("/")[0] else n for n in names]
    common = os.path.commonprefix([n for n in bare if not n.endswith("/end")])
    cut = common.rfind("_") + 1
    if cut and all(len(n.split("/")[0]) > cut for n in bare):
        removed.add(common[:cut])
        bare = [n[cut:] for n in bare]
    return bare, sorted(removed)


def match_joints(names: list[str], joint_map: dict[str, tuple[str, ...]] | None = None,
                 source: str = "bvh") -> tuple[dict[str, int], list[str]]:
    """Index of the file joint supplying each of our points, and notes. `joint_map` entries replace the default
    candidates of the points they name. Candidates are compared as written, then without rig prefixes, then
    ignoring case; the first candidate found wins, and a file joint supplies one of our points at most (a marker
    on the joint of a body would make a bone of zero length)."""
    table = {**DEFAULT_JOINT_MAP, **{k: tuple(v) for k, v in (joint_map or {}).items()}}
    bare, removed = strip_prefixes(names)
    pools = (names, bare, [n.lower() for n in bare])
    found, stripped = {}, False
    for ours, candidates in table.items():
        for cand in candidates:
            hits = [(level, pool.index(key)) for level, (pool, key) in enumerate(zip(pools, (cand, cand, cand.lower())))
                    if key in pool]
            level, index = next(((lv, i) for lv, i in hits if i not in found.values()), (0, None))
            if index is not None:
                found[ours] = index
                stripped |= level > 0 and names[index] != bare[index]
                break
    missing = [k for k in table if k not in found and k not in OPTIONAL_POINTS]
    if missing:
        raise MotionFormatError(
            f"{source}: no BVH joint found for our {missing}; expected one of "
            f"{ {k: list(table[k]) for k in missing} }; joints in the file: {[n for n in names if '/end' not in n]}. "
            "Name them in a joint map (YAML {our point: BVH joint name or list of names}, `--joint-map`)")
    notes = [f"joint names matched without the rig prefix {', '.join(map(repr, removed))}"] if stripped else []
    return found, notes


def load_joint_map(path: str | Path) -> dict[str, tuple[str, ...]]:
    """A joint map from YAML {our point name: BVH joint name or list of names} (safe YAML only)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(errors="strict"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MotionFormatError(f"{path}: not a readable YAML joint map ({exc})") from exc
    if not isinstance(data, dict) or not data:
        raise MotionFormatError(f"{path}: a joint map is a YAML mapping {{our point: BVH joint name or list}}, "
                                f"got {type(data).__name__}")
    unknown = [k for k in data if k not in TARGET_POINTS]
    if unknown:
        raise MotionFormatError(f"{path}: unknown points {unknown}; our points are {list(TARGET_POINTS)}")
    out = {}
    for k, v in data.items():
        names = [v] if isinstance(v, str) else v
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise MotionFormatError(f"{path}: {k}: expected a BVH joint name or a list of names, got {v!r}")
        out[k] = tuple(names)
    return out


def _own_skeleton_scale(bvh: Bvh, up_axis: str) -> float | None:
    """File units per metre when the file's skeleton is ours (our body names, parents and offsets), else None."""
    parents, offsets, _ = _skeleton()
    joints = [j for j in bvh.joints if not j.is_end]
    if sorted(j.name for j in joints) != sorted(hum.BODY_NAMES):
        return None
    by_name = {j.name: j for j in joints}
    if any((bvh.joints[by_name[n].parent].name if by_name[n].parent >= 0 else None) !=
           (hum.BODY_NAMES[parents[b]] if parents[b] >= 0 else None) for b, n in enumerate(hum.BODY_NAMES)):
        return None
    to_z = Y_UP_TO_Z_UP if up_axis == "y" else np.eye(3)
    theirs = np.array([to_z @ by_name[n].offset for n in hum.BODY_NAMES[1:]])
    ours = offsets[1:]
    scale = float((theirs * ours).sum() / (ours * ours).sum())
    if scale <= 0 or np.abs(theirs / scale - ours).max() > OWN_SKELETON_TOLERANCE:
        return None
    return scale


def _own_dofs(bvh: Bvh, up_axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Root rotation matrices [T, 3, 3] (z up) and DoFs [T, 28] of a file of our skeleton: rotation channels in
    our hinge order (our own export) are read as they are; any other order goes through the joint rotations,
    decomposed continuously in time within our joint limits (kinematics.joint_quats_to_dof)."""
    to_z = Y_UP_TO_Z_UP if up_axis == "y" else np.eye(3)
    local = local_rotations(bvh)
    index = {j.name: i for i, j in enumerate(bvh.joints)}
    hinge, signs = HINGE_CHANNELS[up_axis]
    joints = [bvh.joints[index[body]] for _, body, _ in hum.JOINT_GROUPS]
    rotations = [[(k, c) for k, c in enumerate(j.channels) if c.endswith("rotation")] for j in joints]
    root = to_z @ local[index[hum.BODY_NAMES[0]]] @ to_z.T
    if all(tuple(c for _, c in r) == hinge for r in rotations):
        dof = np.zeros((bvh.motion.shape[0], hum.NUM_DOFS))
        for g, ((_, _, axes), j, r) in enumerate(zip(hum.JOINT_GROUPS, joints, rotations)):
            xyz = np.radians(bvh.motion[:, [j.channel_start + k for k, _ in r]]) * np.array(signs)
            dof[:, hum.DOF_OFFSETS[g]:hum.DOF_OFFSETS[g + 1]] = xyz[:, ["xyz".index(a) for a in axes]]
        return root, dof
    mats = np.stack([to_z @ local[index[body]] @ to_z.T for _, body, _ in hum.JOINT_GROUPS], 1)  # [T, G, 3, 3]
    joint_quats = _matrix_to_quat(torch.from_numpy(np.ascontiguousarray(mats)))
    return root, joint_quats_to_dof(joint_quats, continuous=True).numpy()


def import_bvh(path: str | Path, up_axis: str = "y", retarget_cfg: RetargetConfig | None = None,
               joint_map: dict[str, tuple[str, ...]] | None = None, loop: bool = False,
               name: str | None = None, settings: ImportSettings | None = None) -> tuple[MotionClip, dict]:
    """Parse a BVH file, convert it to z up and metres, retarget it (or convert it directly when its skeleton is
    ours) and finish it (cleanup.finish_clip). Returns our clip and statistics: fit errors and `notes`, one line
    per change. `settings.fps` overrides the file's Frame Time; without settings, grounding follows retarget_cfg."""
    path = Path(path)
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    cfg = retarget_cfg or RetargetConfig()
    settings = settings or ImportSettings(ground=cfg.ground)
    bvh = parse_bvh(path)
    fps, notes = given_fps(bvh.fps, settings, str(path))
    scale = _own_skeleton_scale(bvh, up_axis)
    if scale is not None:  # our own skeleton: its rotations are our DoFs, no retargeting
        to_z = Y_UP_TO_Z_UP if up_axis == "y" else np.eye(3)
        root_rot, dof = _own_dofs(bvh, up_axis)
        root_quat = _matrix_to_quat(torch.from_numpy(np.ascontiguousarray(root_rot))).numpy()
        root_pos = _root_translation(bvh, bvh.joints[0]) @ to_z.T / scale
        clip = MotionClip(fps=fps, root_pos=np.ascontiguousarray(root_pos), root_quat=root_quat, dof_pos=dof,
                          name=name or path.stem).validate(str(path))
        stats = {"scale": 1.0 / scale, "mean_error": 0.0, "max_error": 0.0, "mean_angle_error_deg": 0.0,
                 "max_angle_error_deg": 0.0}
        notes.append("skeleton is ours: rotations converted directly, not retargeted")
    else:
        positions = global_positions(bvh)
        if up_axis == "y":
            positions = positions @ Y_UP_TO_Z_UP.T
        found, match_notes = match_joints([j.name for j in bvh.joints], joint_map, str(path))
        notes += match_notes
        points = {ours: positions[:, i] for ours, i in found.items()}
        clip, stats = retarget(points, fps, replace(cfg, ground=settings.ground), name=name or path.stem,
                               source=str(path))
    clip.loop = loop
    clip, finish_notes = finish_clip(clip, settings, str(path))
    stats["notes"] = notes + list(finish_notes)
    return clip, stats


def export_bvh(clip: MotionClip, path: str | Path, up_axis: str = "y", names: dict[str, str] | None = None) -> None:
    """Write our clip as a BVH of our own skeleton: our body names (or `names`), offsets from our MJCF in metres,
    y up as CMU files are (or z up), rotation channels in our hinge order (exact, see HINGE_CHANNELS), foot and head
    markers as End Sites. Objects, contacts and the loop flag are not part of BVH."""
    if up_axis not in HINGE_CHANNELS:
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    parents, offsets, group_of_body = _skeleton()
    from_z = Y_UP_TO_Z_UP.T if up_axis == "y" else np.eye(3)
    channels, signs = HINGE_CHANNELS[up_axis]
    names = names or {}
    joints, values = [], []
    root_euler = quat_to_euler_xyz(torch.from_numpy(clip.root_quat)).numpy()
    for b, body in enumerate(hum.BODY_NAMES):
        offset = np.zeros(3) if b == 0 else from_z @ offsets[b]
        joints.append(BvhJoint(names.get(body, body), int(parents[b]), offset,
                               (POSITION_CHANNELS if b == 0 else []) + list(channels)))
        xyz = np.zeros((clip.num_frames, 3))
        if b == 0:
            xyz = root_euler
        elif group_of_body[b] >= 0:
            g = group_of_body[b]
            for i, axis in enumerate(hum.JOINT_GROUPS[g][2]):
                xyz[:, "xyz".index(axis)] = clip.dof_pos[:, hum.DOF_OFFSETS[g] + i]
        rot = np.degrees(xyz * np.array(signs))
        values.append(np.concatenate((clip.root_pos @ from_z.T, rot), 1) if b == 0 else rot)
    for body, offset in MARKERS.values():
        joints.append(BvhJoint(f"{names.get(body, body)}/end", hum.BODY_NAMES.index(body),
                               from_z @ np.array(offset), is_end=True))
        values.append(None)
    write_bvh(path, joints, 1.0 / clip.fps, values)


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
