"""Footstep planning and foot trajectories for the motion generator.

A foot is either in stance, fixed in the world (it may roll about its heel edge after landing and about its toe edge
before lifting, but the edge it rolls on does not move), or in swing, travelling on a smooth arc from the lift-off
pose to the landing pose. Feet placed this way cannot skate.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

# Parts of a stance spent rolling onto the flat foot after heel strike, and onto the toes before lift-off.
HEEL_ROLL_FRACTION = 0.15
TOE_ROLL_FRACTION = 0.3
# Swing: the foot lifts vertically for this fraction of the swing before it travels, and lowers vertically for the
# last fraction.
SWING_LIFT_FRACTION = 0.1
SWING_LAND_FRACTION = 0.05
# Rolls last these fractions of the stance, or of this many seconds for a longer stance.
ROLL_TIME_BASIS = 0.8
# Stance beginning before / ending after the planned time range (standing still there).
OPEN_END = 1e6


@dataclass(frozen=True)
class FootGeometry:
    """The foot box in the foot body's frame, from the model (x forward, z up)."""

    centre: np.ndarray  # (3,)
    half_size: np.ndarray  # (3,)

    @classmethod
    def from_model(cls, model: mujoco.MjModel, body: str = "right_foot") -> "FootGeometry":
        bid = model.body(body).id
        gid = int(np.nonzero(model.geom_bodyid == bid)[0][0])
        return cls(centre=model.geom_pos[gid].copy(), half_size=model.geom_size[gid].copy())

    @property
    def sole_depth(self) -> float:
        """How far the sole lies below the foot body origin."""
        return float(self.half_size[2] - self.centre[2])

    @property
    def heel_pivot(self) -> np.ndarray:
        return np.array([self.centre[0] - self.half_size[0], 0.0, -self.sole_depth])

    @property
    def toe_pivot(self) -> np.ndarray:
        return np.array([self.centre[0] + self.half_size[0], 0.0, -self.sole_depth])

    def sole_corners(self) -> np.ndarray:
        """The 4 bottom corners [4, 3] in the foot frame: heel right, heel left, toe right, toe left."""
        c, h = self.centre, self.half_size
        return np.array([[c[0] + sx * h[0], c[1] + sy * h[1], c[2] - h[2]] for sx in (-1, 1) for sy in (-1, 1)])


@dataclass
class Stance:
    """One ground contact of one foot. Times in seconds; the flat foot's origin sits over `xy`, turned by `yaw`."""

    start: float
    end: float
    xy: np.ndarray
    yaw: float
    heel_strike: float = 0.0  # toe-up pitch (rad) at landing, rolled down about the heel edge
    toe_off: float = 0.0  # heel-up pitch (rad) at lift-off, rolled up about the toe edge


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def min_jerk(s: np.ndarray | float) -> np.ndarray | float:
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


def smooth_step(s: np.ndarray | float) -> np.ndarray | float:
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3 - 2 * s)


def stance_pitch(stance: Stance, t: float) -> float:
    """Foot pitch about its own y axis (positive = toe down) during a stance."""
    duration = min(stance.end - stance.start, ROLL_TIME_BASIS)
    if stance.heel_strike > 0 and t < stance.start + HEEL_ROLL_FRACTION * duration:
        return -stance.heel_strike * (1 - smooth_step((t - stance.start) / (HEEL_ROLL_FRACTION * duration)))
    toe_roll = TOE_ROLL_FRACTION * duration
    if stance.toe_off > 0 and t > stance.end - toe_roll:
        return stance.toe_off * smooth_step((t - (stance.end - toe_roll)) / toe_roll)
    return 0.0


def stance_pose(stance: Stance, t: float, geom: FootGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Foot body origin and rotation during a stance: rolling about the heel or toe edge keeps that edge still."""
    pitch = stance_pitch(stance, t)
    yaw_rot = rot_z(stance.yaw)
    flat_origin = np.array([stance.xy[0], stance.xy[1], geom.sole_depth])
    if pitch == 0.0:
        return flat_origin, yaw_rot
    pivot = geom.heel_pivot if pitch < 0 else geom.toe_pivot
    pitch_rot = rot_y(pitch)
    return flat_origin + yaw_rot @ (pivot - pitch_rot @ pivot), yaw_rot @ pitch_rot


def lift_above_ground(pos: np.ndarray, rot: np.ndarray, geom: FootGeometry) -> np.ndarray:
    lowest = float(np.min((rot @ geom.sole_corners().T)[2] + pos[2]))
    return pos + np.array([0.0, 0.0, max(0.0, -lowest)])


def swing_pose(before: Stance, after: Stance, t: float, geom: FootGeometry, clearance: float):
    """Foot pose between two stances: lift, travel with minimum jerk, lower; never below the ground."""
    s = (t - before.end) / (after.start - before.end)
    p0, r0 = stance_pose(before, before.end, geom)
    p1, r1 = stance_pose(after, after.start, geom)
    travel = min_jerk((s - SWING_LIFT_FRACTION) / (1 - SWING_LIFT_FRACTION - SWING_LAND_FRACTION))
    pos = p0 + (p1 - p0) * travel
    pos[2] = p0[2] + (p1[2] - p0[2]) * smooth_step(s) + clearance * np.sin(np.pi * np.clip(s, 0.0, 1.0))
    yaw = before.yaw + np.angle(np.exp(1j * (after.yaw - before.yaw))) * travel
    pitch = before.toe_off + (-after.heel_strike - before.toe_off) * smooth_step(s)
    rot = rot_z(yaw) @ rot_y(pitch)
    return lift_above_ground(pos, rot, geom), rot


def foot_trajectory(stances: list[Stance], times: np.ndarray, geom: FootGeometry, clearance: float):
    """Foot body origin [T, 3], rotation [T, 3, 3] and stance flag [T] at the given times.

    Stances must be sorted and not overlap; the first should start and the last end outside `times`.
    """
    pos = np.zeros((len(times), 3))
    rot = np.zeros((len(times), 3, 3))
    in_stance = np.zeros(len(times), dtype=bool)
    for i, t in enumerate(times):
        k = int(np.searchsorted([s.start for s in stances], t, side="right")) - 1
        if k < 0:
            raise ValueError(f"time {t:.3f} s comes before the first stance")
        if t <= stances[k].end:
            pos[i], rot[i] = stance_pose(stances[k], t, geom)
            in_stance[i] = True
        else:
            if k + 1 >= len(stances):
                raise ValueError(f"time {t:.3f} s comes after the last stance")
            pos[i], rot[i] = swing_pose(stances[k], stances[k + 1], t, geom, clearance)
    return pos, rot, in_stance


def stances_from_swings(swings: list[tuple[float, float]], place, stance_time: float) -> list[Stance]:
    """Stances around sorted swing intervals (lift-off, landing) of one foot.

    `place(t_mid, start, end)` returns a Stance's (xy, yaw, heel_strike, toe_off) for the stance centred on t_mid;
    open-ended first and last stances are centred half a typical stance time from their one finite end.
    """
    bounds = [-OPEN_END] + [x for sw in swings for x in sw] + [OPEN_END]
    stances = []
    for start, end in zip(bounds[0::2], bounds[1::2]):
        if start == -OPEN_END and end == OPEN_END:
            mid = 0.0
        elif start == -OPEN_END:
            mid = end - stance_time / 2
        elif end == OPEN_END:
            mid = start + stance_time / 2
        else:
            mid = (start + end) / 2
        xy, yaw, heel, toe = place(mid, start, end)
        stances.append(Stance(start=start, end=end, xy=np.asarray(xy, dtype=np.float64), yaw=float(yaw),
                              heel_strike=heel, toe_off=toe))
    return stances
