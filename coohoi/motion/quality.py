"""Quality measures of a clip of our humanoid, computed with MuJoCo kinematics of the real model geometry.

- Floor: the height the soles rest on, the FLOOR_PERCENTILE-th percentile over frames of the lowest sole corner (0
  for a clip on the ground; negative for one sunk into it). Contact is measured from it, so that a sunk clip's
  swinging feet, still below CONTACT_HEIGHT, do not merge its steps into one contact phase that "slides" as far as
  the clip travels (the sinking itself is the penetration check's to report). A floor above CONTACT_HEIGHT floats.
- Foot sliding: a sole corner is in contact while it is within CONTACT_HEIGHT of the floor; a contact phase is a
  run of consecutive frames in contact; its slide is the largest horizontal distance the corner moves from where
  the phase began. Corners (not the foot origin) are tracked so that rolling on the heel or toe edge, which keeps
  that edge still, counts as not sliding, while a flat foot dragged along the ground does.
- Ground penetration: the lowest point of every humanoid geom (sphere, capsule, box) over all frames.
- Joint limits: the largest amount any DoF passes its range.
- DoF speed: the largest finite-difference speed of any DoF (a mocap glitch or a flipped angle shows as a spike).
- Grip: while the clip marks both hands in contact (contacts[:, :2]), the distance from each hand centre to its
  grip point: the middle of the box's side face, one hand radius out.
- Centre of pressure: full inverse dynamics (mj_inverse, finite-difference velocities and accelerations, no
  contacts) gives the wrench the motion needs at the root; where its line of action meets the ground is the centre
  of pressure that foot contacts would have to supply. Its distance outside the convex hull of the sole corners on
  the ground, per frame, measures how far the motion is from what contact forces alone can produce (0 = feasible).
  A kinematic clip that fails this asks a simulated character for a motion it cannot make without falling.
  Airborne frames (no sole corner on the floor, or a motion that needs less than MIN_SUPPORT_LOAD of the weight
  pushed up by the ground: free flight, where the centre of pressure is undefined) are counted, not measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial import ConvexHull, QhullError

from coohoi.motion.clip import MotionClip
# The DoF speed check is the importers' (cleanup.MAX_DOF_SPEED says why the limit), so that an imported clip passes.
from coohoi.motion.importers.cleanup import MAX_DOF_SPEED, largest_dof_speed
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
# Below this share of the body's weight pushed up by the ground the motion is in free flight (a jump's flight phase,
# or the frame it leaves the ground): the centre of pressure, moment over that small force, means nothing there.
MIN_SUPPORT_LOAD = 0.1
# The floor: this percentile of the per-frame lowest sole corner, so that airborne frames (a jump) and a few glitch
# frames below the rest do not move it.
FLOOR_PERCENTILE = 5


@dataclass
class ClipQuality:
    max_foot_slide: float  # m, worst contact phase of any sole corner
    min_geom_height: float  # m, lowest point of any geom (negative = below the ground)
    max_limit_violation: float  # rad
    max_grip_error: float  # m, nan when the clip has no gripping frames
    grip_frames: int
    mean_cop_error: float  # m, centre of pressure outside the feet on the ground, mean over the grounded frames
    cop_frame_share: float  # share of the grounded frames with the centre of pressure more than COP_FRAME_ERROR off
    floor: float = 0.0  # m, height the soles rest on (module docstring)
    max_dof_speed: float = 0.0  # rad/s
    fastest_dof: str = ""  # the DoF that reaches max_dof_speed ...
    fastest_frame: int = 0  # ... from this frame to the next
    airborne_frames: int = 0  # frames left out of the centre-of-pressure measures (module docstring)

    def failures(self) -> list[str]:
        """The checks this clip fails, each named with its figure and limit (empty: it passes)."""
        checks = [
            (self.max_foot_slide >= MAX_FOOT_SLIDE, f"foot slide {100 * self.max_foot_slide:.1f} cm "
                                                    f"(limit {100 * MAX_FOOT_SLIDE:g} cm)"),
            (self.min_geom_height <= -MAX_PENETRATION, f"penetration {-100 * self.min_geom_height:.1f} cm below the "
                                                       f"ground (limit {100 * MAX_PENETRATION:g} cm)"),
            (self.floor > CONTACT_HEIGHT, f"floating: the feet rest {100 * self.floor:.1f} cm above the ground"),
            (self.max_limit_violation > JOINT_LIMIT_TOLERANCE, f"joint limits passed by "
                                                               f"{np.degrees(self.max_limit_violation):.1f} deg"),
            (self.max_dof_speed > MAX_DOF_SPEED, f"DoF speed {self.max_dof_speed:.0f} rad/s at {self.fastest_dof}, "
                                                 f"frame {self.fastest_frame} (limit {MAX_DOF_SPEED:g} rad/s)"),
            (self.grip_frames > 0 and self.max_grip_error >= MAX_GRIP_ERROR,
             f"grip: a hand {100 * self.max_grip_error:.1f} cm off the box (limit {100 * MAX_GRIP_ERROR:g} cm)"),
            (self.mean_cop_error >= MAX_MEAN_COP_ERROR or self.cop_frame_share > MAX_COP_FRAME_SHARE,
             f"centre of pressure {100 * self.mean_cop_error:.1f} cm off the feet on average, "
             f"{self.cop_frame_share:.0%} of the frames more than {100 * COP_FRAME_ERROR:g} cm off (limits "
             f"{100 * MAX_MEAN_COP_ERROR:g} cm, {MAX_COP_FRAME_SHARE:.0%})"),
        ]
        return [message for failed, message in checks if failed]


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


def centre_of_pressure(clip: MotionClip, measure: ClipMeasure, object_mass: float = 0.0, floor: float = 0.0):
    """The centre of pressure [T, 2] each frame needs (module docstring; NaN at the two frames at each end, where
    accelerations are not central, and where the motion would have to pull the humanoid down) and the sole corners
    on the ground (within CONTACT_HEIGHT of `floor`) per frame (list of [k, 2]). A held object (clip contacts on both
    hands, object pose given, object off the ground) of `object_mass` kg adds its weight and inertial force at its
    centre."""
    cop, support, _ = _centre_of_pressure_and_load(clip, measure, object_mass, floor)
    return cop, support


def _centre_of_pressure_and_load(clip: MotionClip, measure: ClipMeasure, object_mass: float, floor: float):
    """centre_of_pressure's results and, per frame [T], the upward force the motion needs as a share of the weight
    (humanoid and held object; NaN at the ends)."""
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
    support = [c[c[..., 2] < floor + CONTACT_HEIGHT][:, :2] for c in corners]
    held = np.zeros(clip.num_frames, dtype=bool)
    if object_mass > 0 and clip.contacts is not None and clip.object_pos is not None:
        lifted = clip.object_pos[:, 2] > clip.object_size[2] / 2 + LIFT_CLEARANCE
        held = np.all(clip.contacts[:, :2] > 0.5, axis=-1) & lifted
    root = m.body(1).id
    gravity = -m.opt.gravity[2]
    body_weight = float(m.body_subtreemass[root]) * gravity
    cop = np.full((clip.num_frames, 2), np.nan)
    load = np.full(clip.num_frames, np.nan)
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
            f_obj = object_mass * (acc + np.array([0.0, 0.0, gravity]))
            force += f_obj
            torque += np.cross(clip.object_pos[t] - origin, f_obj)
        load[t] = force[2] / (body_weight + (object_mass * gravity if held[t] else 0.0))
        if force[2] > 0:
            # Ground point p with no horizontal moment: torque + (origin - p) x force has zero x and y.
            cop[t] = origin[:2] - np.array([torque[1] + origin[2] * force[0],
                                            origin[2] * force[1] - torque[0]]) / force[2]
    return cop, support, load


def centre_of_pressure_error(clip: MotionClip, measure: ClipMeasure, object_mass: float = 0.0,
                             floor: float = 0.0) -> np.ndarray:
    """Per frame [T - 4] (clip ends excluded), how far (m) the centre of pressure the motion needs lies outside the
    feet on the ground (`floor`); NaN at airborne frames: no sole corner on the floor, or less than MIN_SUPPORT_LOAD
    of the weight to be pushed up (free flight)."""
    cop, support, load = _centre_of_pressure_and_load(clip, measure, object_mass, floor)
    return np.array([np.nan if len(support[t]) == 0 or not load[t] >= MIN_SUPPORT_LOAD
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


def contact_phase_slides(points: np.ndarray, contact_height: float = CONTACT_HEIGHT, floor: float = 0.0
                         ) -> list[float]:
    """Slide of every contact phase (run of frames within contact_height of the floor) of one point track [T, 3]:
    the largest horizontal distance from where the phase began."""
    edges = np.diff(np.concatenate([[0], (points[:, 2] < floor + contact_height).astype(int), [0]]))
    return [float(np.max(np.linalg.norm(points[a:b, :2] - points[a, :2], axis=-1)))
            for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


def clip_floor(corners: np.ndarray) -> float:
    """The height the soles rest on (module docstring), from the sole corners [T, 2, 4, 3]."""
    return float(np.percentile(corners[..., 2].min(axis=(1, 2)), FLOOR_PERCENTILE))


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
    floor = clip_floor(corners)
    slides = [s for f in range(2) for c in range(4) for s in contact_phase_slides(corners[:, f, c], floor=floor)]
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
    cop = centre_of_pressure_error(clip, measure, object_mass=CARRIED_OBJECT_MASS, floor=floor)
    grounded = cop[~np.isnan(cop)]
    speed, dof, frame = largest_dof_speed(clip)
    return ClipQuality(max_foot_slide=max(slides, default=0.0), min_geom_height=float(lowest.min()),
                       max_limit_violation=violation, max_grip_error=grip_err, grip_frames=grip_frames,
                       mean_cop_error=float(grounded.mean()) if grounded.size else 0.0,
                       cop_frame_share=float(np.mean(grounded > COP_FRAME_ERROR)) if grounded.size else 0.0,
                       floor=floor, max_dof_speed=speed, fastest_dof=dof, fastest_frame=frame,
                       airborne_frames=int(cop.size - grounded.size))


TABLE_HEADER = ("| clip | frames | fps | foot slide (cm) | lowest point (cm) | joint limit excess (deg) "
                "| fastest DoF (rad/s) | hand-to-grip (cm) | CoP off the feet, mean (cm) "
                f"| frames CoP > {100 * COP_FRAME_ERROR:g} cm off | airborne frames | checks |")


def quality_table(clips: list[MotionClip], measure: ClipMeasure | None = None) -> tuple[str, list[list[str]]]:
    """A markdown table of the quality measures of the clips (one row each, by clip name) and, per clip, the checks
    it fails (ClipQuality.failures; empty when it passes)."""
    measure = measure or ClipMeasure()
    lines, failures = [TABLE_HEADER, "|---" * TABLE_HEADER.count(" | ") + "|---|"], []
    for clip in clips:
        q = measure_clip(clip, measure)
        failures.append(q.failures())
        grip = f"{100 * q.max_grip_error:.2f} ({q.grip_frames} frames)" if q.grip_frames else "-"
        share = f"{q.cop_frame_share:.0%}" if q.airborne_frames < clip.num_frames - 4 else "-"
        lines.append(f"| {clip.name} | {clip.num_frames} | {clip.fps:g} | {100 * q.max_foot_slide:.2f} "
                     f"| {100 * q.min_geom_height:.2f} | {np.degrees(q.max_limit_violation):.1f} "
                     f"| {q.max_dof_speed:.1f} ({q.fastest_dof}) | {grip} | {100 * q.mean_cop_error:.1f} | {share} "
                     f"| {q.airborne_frames} | {'; '.join(failures[-1]) or 'pass'} |")
    return "\n".join(lines), failures


def report(dataset: str | None = None) -> str:
    """The quality table (quality_table) of every clip in a dataset.yaml (default: the shipped set)."""
    import yaml

    from coohoi.assets import ASSET_DIR

    path = ASSET_DIR / "motions" / "dataset.yaml" if dataset is None else Path(dataset)
    entries = yaml.safe_load(path.read_text())["clips"]
    return quality_table([MotionClip.load(path.parent / entry["file"]) for entry in entries])[0]


if __name__ == "__main__":
    import sys

    print(report(sys.argv[1] if len(sys.argv) > 1 else None))
