"""Quality measures of a clip of our humanoid, computed with MuJoCo kinematics of the real model geometry.

- Foot sliding: a sole corner is in contact while it is within CONTACT_HEIGHT of the ground; a contact phase is a
  run of consecutive frames in contact; its slide is the largest horizontal distance the corner moves from where
  the phase began. Corners (not the foot origin) are tracked so that rolling on the heel or toe edge, which keeps
  that edge still, counts as not sliding, while a flat foot dragged along the ground does.
- Ground penetration: the lowest point of every humanoid geom (sphere, capsule, box) over all frames.
- Joint limits: the largest amount any DoF passes its range.
- Grip: while the clip marks both hands in contact (contacts[:, :2]), the distance from each hand centre to its
  grip point: the middle of the box's side face, one hand radius out.
- Centre of pressure: full inverse dynamics (mj_inverse, finite-difference velocities and accelerations, no
  contacts) gives the wrench the motion needs at the root; where its line of action meets the ground is the centre
  of pressure that foot contacts would have to supply. Its distance outside the convex hull of the sole corners on
  the ground, per frame, measures how far the motion is from what contact forces alone can produce (0 = feasible).
  A kinematic clip that fails this asks a simulated character for a motion it cannot make without falling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial import ConvexHull, QhullError

from coohoi.motion.clip import MotionClip
from coohoi.motion.gait import FootGeometry
from coohoi.motion.ik import HumanoidIK
from coohoi.objects import DEFAULT_MASS

CONTACT_HEIGHT = 0.02  # m: a sole corner this close to the ground counts as touching it
MAX_FOOT_SLIDE = 0.02  # m per contact phase
MAX_PENETRATION = 0.01  # m below the ground
JOINT_LIMIT_TOLERANCE = 1e-6  # rad
MAX_GRIP_ERROR = 0.02  # m
HAND_RADIUS = 0.04
CARRIED_OBJECT_MASS = DEFAULT_MASS["box"]  # kg, the published box (the scene's default box)
LIFT_CLEARANCE = 0.01  # m: an object this far above resting on its base is carried, not standing on the ground
# Centre-of-pressure checks: the mean error over the clip, and the share of frames more than COP_FRAME_ERROR off.
MAX_MEAN_COP_ERROR = 0.03  # m
COP_FRAME_ERROR = 0.03  # m
MAX_COP_FRAME_SHARE = 0.1


@dataclass
class ClipQuality:
    max_foot_slide: float  # m, worst contact phase of any sole corner
    min_geom_height: float  # m, lowest point of any geom (negative = below the ground)
    max_limit_violation: float  # rad
    max_grip_error: float  # m, nan when the clip has no gripping frames
    grip_frames: int
    mean_cop_error: float  # m, centre of pressure outside the feet on the ground, mean over frames
    cop_frame_share: float  # share of frames with the centre of pressure more than COP_FRAME_ERROR off


class ClipMeasure:
    """Per-frame world geometry of a clip's humanoid (one MuJoCo model, reused)."""

    def __init__(self):
        self.ik = HumanoidIK()
        self.model = self.ik.model
        self.foot = FootGeometry.from_model(self.model)
        self.foot_ids = [self.model.body(n).id for n in ("right_foot", "left_foot")]
        self.hand_ids = [self.model.body(n).id for n in ("right_hand", "left_hand")]

    def frames(self, clip: MotionClip):
        for root_pos, root_quat, dof in zip(clip.root_pos, clip.root_quat, clip.dof_pos):
            yield self.ik.forward(root_pos, root_quat, dof)

    def sole_corners(self, clip: MotionClip) -> np.ndarray:
        """World positions [T, 2 feet, 4, 3] of the sole corners (right foot, left foot)."""
        local = self.foot.sole_corners()
        out = np.zeros((clip.num_frames, 2, 4, 3))
        for i, d in enumerate(self.frames(clip)):
            for f, bid in enumerate(self.foot_ids):
                out[i, f] = d.xpos[bid] + local @ d.xmat[bid].reshape(3, 3).T
        return out

    def lowest_points(self, clip: MotionClip) -> np.ndarray:
        """Lowest z [T, ngeom] of every geom."""
        m = self.model
        out = np.zeros((clip.num_frames, m.ngeom))
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        for i, d in enumerate(self.frames(clip)):
            for g in range(m.ngeom):
                pos, rot, size = d.geom_xpos[g], d.geom_xmat[g].reshape(3, 3), m.geom_size[g]
                kind = m.geom_type[g]
                if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
                    out[i, g] = pos[2] - size[0]
                elif kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
                    out[i, g] = pos[2] - abs(rot[2, 2]) * size[1] - size[0]
                elif kind == mujoco.mjtGeom.mjGEOM_BOX:
                    out[i, g] = np.min(pos[2] + (signs * size) @ rot[2])
                else:
                    raise ValueError(f"geom type {kind} of geom {g} is not measured")
        return out

    def hand_positions(self, clip: MotionClip) -> np.ndarray:
        """[T, 2, 3] hand centres (right, left)."""
        return np.array([[d.xpos[b].copy() for b in self.hand_ids] for d in self.frames(clip)])


def centre_of_pressure(clip: MotionClip, measure: ClipMeasure, object_mass: float = 0.0):
    """The centre of pressure [T, 2] each frame needs (module docstring; NaN at the two frames at each end, where
    accelerations are not central, and where the motion would have to pull the humanoid down) and the sole corners
    on the ground per frame (list of [k, 2]). A held object (clip contacts on both hands, object pose given, object
    off the ground) of `object_mass` kg adds its weight and inertial force at its centre."""
    m = measure.model
    d = mujoco.MjData(m)
    # The wrench must come from the root, not from contacts (this model serves kinematics only otherwise).
    m.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    dt = 1.0 / clip.fps
    qpos = np.concatenate([clip.root_pos, clip.root_quat, clip.dof_pos], axis=1)
    qvel = np.zeros((clip.num_frames, m.nv))
    for t in range(clip.num_frames - 1):
        mujoco.mj_differentiatePos(m, qvel[t], dt, qpos[t], qpos[t + 1])
    corners = measure.sole_corners(clip)
    support = [c[c[..., 2] < CONTACT_HEIGHT][:, :2] for c in corners]
    held = np.zeros(clip.num_frames, dtype=bool)
    if object_mass > 0 and clip.contacts is not None and clip.object_pos is not None:
        lifted = clip.object_pos[:, 2] > clip.object_size[2] / 2 + LIFT_CLEARANCE
        held = np.all(clip.contacts[:, :2] > 0.5, axis=-1) & lifted
    root = m.body(1).id
    cop = np.full((clip.num_frames, 2), np.nan)
    for t in range(2, clip.num_frames - 2):
        d.qpos[:] = qpos[t]
        d.qvel[:] = 0.5 * (qvel[t] + qvel[t - 1])
        d.qacc[:] = (qvel[t] - qvel[t - 1]) / dt
        mujoco.mj_inverse(m, d)
        force = d.qfrc_inverse[:3].copy()
        torque = d.xmat[root].reshape(3, 3) @ d.qfrc_inverse[3:6]  # free-joint rotation: body frame
        origin = d.xpos[root]
        if held[t]:
            acc = (clip.object_pos[t + 1] - 2 * clip.object_pos[t] + clip.object_pos[t - 1]) / dt**2
            f_obj = object_mass * (acc + np.array([0.0, 0.0, -m.opt.gravity[2]]))
            force += f_obj
            torque += np.cross(clip.object_pos[t] - origin, f_obj)
        if force[2] > 0:
            # Ground point p with no horizontal moment: torque + (origin - p) x force has zero x and y.
            cop[t] = origin[:2] - np.array([torque[1] + origin[2] * force[0],
                                            origin[2] * force[1] - torque[0]]) / force[2]
    return cop, support


def centre_of_pressure_error(clip: MotionClip, measure: ClipMeasure, object_mass: float = 0.0) -> np.ndarray:
    """Per frame [T - 4] (clip ends excluded), how far (m) the centre of pressure the motion needs lies outside the
    feet on the ground; inf where the motion would pull the humanoid down or no foot is on the ground."""
    cop, support = centre_of_pressure(clip, measure, object_mass)
    return np.array([np.inf if np.isnan(cop[t, 0]) or len(support[t]) == 0
                     else float(np.linalg.norm(cop[t] - nearest_in_hull(support[t], cop[t])))
                     for t in range(2, clip.num_frames - 2)])


def nearest_in_hull(points: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The point of the convex hull of 2-D points nearest to p (p itself inside). A single point or points on one
    line (an edge of the sole) are a point or a segment."""
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):  # fewer than 3 points, or all on one line
        axis = points[-1] - points[0]
        polygon = [points[np.argmin(points @ axis)], points[np.argmax(points @ axis)]]
    else:
        if (hull.equations[:, :2] @ p + hull.equations[:, 2]).max() <= 0.0:
            return p
        polygon = list(points[hull.vertices])
    best, best_distance = polygon[0], np.inf
    for a, b in zip(polygon, polygon[1:] + polygon[:1]):
        ab = b - a
        u = 0.0 if not ab.any() else float(np.clip(np.dot(p - a, ab) / np.dot(ab, ab), 0.0, 1.0))
        q = a + u * ab
        if np.linalg.norm(p - q) < best_distance:
            best, best_distance = q, float(np.linalg.norm(p - q))
    return best


def contact_phase_slides(points: np.ndarray, contact_height: float = CONTACT_HEIGHT) -> list[float]:
    """Slide of every contact phase of one point track [T, 3]: largest horizontal distance from the phase start."""
    touching = points[:, 2] < contact_height
    slides, start = [], None
    for i in range(len(points) + 1):
        if i < len(points) and touching[i]:
            start = i if start is None else start
        elif start is not None:
            phase = points[start:i, :2]
            slides.append(float(np.max(np.linalg.norm(phase - phase[0], axis=-1))))
            start = None
    return slides


def grip_points(clip: MotionClip) -> np.ndarray:
    """[T, 2, 3] grip points (right side, left side of the box) from the clip's object pose and size."""
    half_width = clip.object_size[1] / 2
    out = np.zeros((clip.num_frames, 2, 3))
    for i, (pos, quat) in enumerate(zip(clip.object_pos, clip.object_quat)):
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, quat)
        y_axis = rot.reshape(3, 3)[:, 1]
        out[i, 0] = pos - (half_width + HAND_RADIUS) * y_axis
        out[i, 1] = pos + (half_width + HAND_RADIUS) * y_axis
    return out


def measure_clip(clip: MotionClip, measure: ClipMeasure | None = None) -> ClipQuality:
    measure = measure or ClipMeasure()
    corners = measure.sole_corners(clip)
    slides = [s for f in range(2) for c in range(4) for s in contact_phase_slides(corners[:, f, c])]
    lowest = measure.lowest_points(clip)
    lower, upper = measure.ik.lower, measure.ik.upper
    violation = float(np.max(np.maximum(lower - clip.dof_pos, 0) + np.maximum(clip.dof_pos - upper, 0)))
    grip_err, grip_frames = float("nan"), 0
    if clip.contacts is not None and clip.object_pos is not None:
        gripping = np.all(clip.contacts[:, :2] > 0.5, axis=-1)
        grip_frames = int(gripping.sum())
        if grip_frames:
            err = np.linalg.norm(measure.hand_positions(clip) - grip_points(clip), axis=-1)
            grip_err = float(err[gripping].max())
    cop = centre_of_pressure_error(clip, measure, object_mass=CARRIED_OBJECT_MASS)
    return ClipQuality(max_foot_slide=max(slides, default=0.0), min_geom_height=float(lowest.min()),
                       max_limit_violation=violation, max_grip_error=grip_err, grip_frames=grip_frames,
                       mean_cop_error=float(cop.mean()), cop_frame_share=float(np.mean(cop > COP_FRAME_ERROR)))


def report(dataset: str | None = None) -> str:
    """A table of the quality measures of every clip in a dataset.yaml (default: the shipped set)."""
    import yaml

    from coohoi.assets import ASSET_DIR

    path = ASSET_DIR / "motions" / "dataset.yaml" if dataset is None else Path(dataset)
    measure = ClipMeasure()
    lines = ["| clip | frames | foot slide (cm) | lowest point (cm) | joint limit excess (rad) | hand-to-grip (cm) "
             f"| CoP off the feet, mean (cm) | frames CoP > {100 * COP_FRAME_ERROR:.0f} cm off |",
             "|---|---|---|---|---|---|---|---|"]
    for entry in yaml.safe_load(path.read_text())["clips"]:
        clip = MotionClip.load(path.parent / entry["file"])
        q = measure_clip(clip, measure)
        grip = f"{100 * q.max_grip_error:.2f} ({q.grip_frames} frames)" if q.grip_frames else "-"
        lines.append(f"| {clip.name} | {clip.num_frames} | {100 * q.max_foot_slide:.2f} "
                     f"| {100 * q.min_geom_height:.2f} | {q.max_limit_violation:.0e} | {grip} "
                     f"| {100 * q.mean_cop_error:.1f} | {100 * q.cop_frame_share:.0f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(report(sys.argv[1] if len(sys.argv) > 1 else None))
