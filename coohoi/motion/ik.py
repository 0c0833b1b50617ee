"""Whole-body inverse kinematics of the humanoid for the motion generator: damped least squares on the MJCF model.

The root pose is given; the 28 hinge angles are solved so that chosen bodies reach position (and optionally
orientation) targets, while the remaining freedom is pulled toward a reference pose. Joint limits are enforced by
clamping after every step. One MjModel and one MjData, numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from coohoi import humanoid as hum

# Damping of the pseudo-inverse (m^2 scale), and the fraction of the way to the reference pose taken per iteration
# in the targets' null space.
IK_DAMPING = 1e-4
IK_POSTURE_GAIN = 0.2
IK_MAX_ITERATIONS = 60
IK_REFINE_ITERATIONS = 15
IK_TOLERANCE = 1e-5  # stop when the largest position error (m) / orientation error (rad) falls below this
IK_MAX_STEP = 0.3  # rad, largest change of one DoF in one iteration
# Orientation errors are weighted like this many metres per radian.
IK_ORIENTATION_WEIGHT = 0.3


@dataclass
class BodyTarget:
    """Where one body should be: its origin's world position, and optionally its world rotation (3x3)."""

    body: str
    pos: np.ndarray
    rot: np.ndarray | None = None
    weight: float = 1.0


def load_humanoid_model() -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(str(hum.MJCF_PATH))


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (world frame) that turns `current` into `target` (both 3x3)."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, (target @ current.T).reshape(-1))
    vec = np.empty(3)
    mujoco.mju_quat2Vel(vec, quat, 1.0)
    return vec


class HumanoidIK:
    """Damped-least-squares IK over the 28 hinge DoFs of one humanoid, with its root pose held fixed."""

    def __init__(self, model: mujoco.MjModel | None = None, ranges: dict[str, tuple[float, float]] | None = None):
        """`ranges` narrows some DoFs (radians, inside the model's ranges), e.g. to keep a joint on one branch."""
        self.model = model if model is not None else load_humanoid_model()
        self.data = mujoco.MjData(self.model)
        self.body_ids = {name: self.model.body(name).id for name in hum.BODY_NAMES}
        self.lower = np.array([self.model.joint(n).range[0] for n in hum.DOF_NAMES])
        self.upper = np.array([self.model.joint(n).range[1] for n in hum.DOF_NAMES])
        for name, (low, high) in (ranges or {}).items():
            i = hum.DOF_NAMES.index(name)
            if not self.lower[i] <= low < high <= self.upper[i]:
                raise ValueError(f"IK range for {name} ({low}, {high}) must lie inside the joint's range "
                                 f"({self.lower[i]:.3f}, {self.upper[i]:.3f})")
            self.lower[i], self.upper[i] = low, high
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))

    def forward(self, root_pos: np.ndarray, root_quat: np.ndarray, dof_pos: np.ndarray) -> mujoco.MjData:
        """Run kinematics for one pose; the returned MjData holds xpos / xmat / geom_xpos of every body and geom."""
        d = self.data
        d.qpos[:3] = root_pos
        d.qpos[3:7] = root_quat
        d.qpos[7:] = dof_pos
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_comPos(self.model, d)
        return d

    def solve(self, root_pos: np.ndarray, root_quat: np.ndarray, dof_init: np.ndarray, targets: list[BodyTarget],
              dof_ref: np.ndarray, iterations: int = IK_MAX_ITERATIONS) -> tuple[np.ndarray, float]:
        """Hinge angles [28] that reach the targets, with the remaining freedom pulled toward `dof_ref`.

        Targets come first (damped pseudo-inverse); the reference pose acts in their null space, so it never pulls
        a reached target away. DoFs that no target depends on are set to the reference. Returns the angles and the
        largest remaining position error (m).
        """
        q = np.clip(np.array(dof_init, dtype=np.float64), self.lower, self.upper)
        dof_ref = np.clip(np.asarray(dof_ref, dtype=np.float64), self.lower, self.upper)
        worst = 0.0
        for it in range(iterations + 1):
            d = self.forward(root_pos, root_quat, q)
            jac, err, worst, worst_rot = self._task_rows(d, targets)
            if it == 0:
                free = ~np.any(jac != 0.0, axis=0) if len(jac) else np.ones_like(q, dtype=bool)
                if np.any(free):
                    q[free] = dof_ref[free]
                    continue
            if max(worst, worst_rot) < IK_TOLERANCE or it == iterations:
                break
            jac_pinv = jac.T @ np.linalg.inv(jac @ jac.T + IK_DAMPING * np.eye(len(jac)))
            step = jac_pinv @ err
            if it < iterations - IK_REFINE_ITERATIONS:  # the last iterations reach the targets without the posture
                step += (np.eye(len(q)) - jac_pinv @ jac) @ (IK_POSTURE_GAIN * (dof_ref - q))
            step *= min(1.0, IK_MAX_STEP / max(float(np.abs(step).max()), 1e-12))
            q = np.clip(q + step, self.lower, self.upper)
        return q, worst

    def _task_rows(self, d: mujoco.MjData, targets: list[BodyTarget]):
        rows, errs = [], []
        worst, worst_rot = 0.0, 0.0
        for tgt in targets:
            bid = self.body_ids[tgt.body]
            mujoco.mj_jacBody(self.model, d, self._jacp, self._jacr, bid)
            e_pos = tgt.pos - d.xpos[bid]
            worst = max(worst, float(np.abs(e_pos).max()))
            rows.append(tgt.weight * self._jacp[:, 6:])
            errs.append(tgt.weight * e_pos)
            if tgt.rot is not None:
                e_rot = rotation_error(tgt.rot, d.xmat[bid].reshape(3, 3))
                worst_rot = max(worst_rot, float(np.abs(e_rot).max()))
                rows.append(tgt.weight * IK_ORIENTATION_WEIGHT * self._jacr[:, 6:])
                errs.append(tgt.weight * IK_ORIENTATION_WEIGHT * e_rot)
        if not rows:
            return np.zeros((0, hum.NUM_DOFS)), np.zeros(0), 0.0, 0.0
        return np.concatenate(rows), np.concatenate(errs), worst, worst_rot
