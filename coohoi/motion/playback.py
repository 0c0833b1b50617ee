"""Kinematic playback of clips: frames of model qpos, rendered to video or shown in the MuJoCo viewer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from coohoi.config import SceneConfig
from coohoi.motion.clip import MotionClip
from coohoi.motion.library import MotionLib
from coohoi.scene import Scene, build_scene

FIXED_CAMERA_MARGIN = 1.2  # fixed camera distance per metre of root travel


def clip_qpos(scene: Scene, clip: MotionClip, fps: float, duration: float | None = None) -> np.ndarray:
    """Model qpos [F, nq] sampled from the clip at `fps` (interpolated by the motion library)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    lib = MotionLib([clip], dtype=torch.float64)
    length = float(lib.clip_durations[0]) if duration is None else float(duration)
    times = torch.arange(int(np.floor(length * fps + 1e-9)) + 1, dtype=torch.float64) / fps
    s = lib.state(torch.zeros(len(times), dtype=torch.long), times)
    qpos = np.repeat(scene.default_qpos[None], len(times), axis=0)
    start = int(scene.qpos_start[0])
    qpos[:, start:start + 3] = s.root_pos.numpy()
    qpos[:, start + 3:start + 7] = s.root_quat.numpy()
    qpos[:, start + 7:start + 35] = s.dof_pos.numpy()
    if s.object_pos is not None:
        o = scene.object_qpos_start
        qpos[:, o:o + 3] = s.object_pos.numpy()
        qpos[:, o + 3:o + 7] = s.object_quat.numpy()
    return qpos


def fixed_camera_for(clip: MotionClip, camera):
    """The camera made static: looking at the middle of the clip's root path, far enough back to see all of it."""
    lo, hi = clip.root_pos[:, :2].min(0), clip.root_pos[:, :2].max(0)
    camera.fixed_lookat = tuple(float(v) for v in 0.5 * (lo + hi))
    camera.distance = max(camera.distance, FIXED_CAMERA_MARGIN * float(np.linalg.norm(hi - lo)))
    return camera


def render_clip(clip: MotionClip, out: str | Path, fps: float = 30.0, width: int = 640, height: int = 480,
                camera=None, time_s: float | None = None, backend: str | None = None, fixed: bool = False) -> int:
    """Write the clip to a video (or, for an image path, the frame at time_s, default 0). Returns frames written.

    camera: a coohoi.render.TrackingCamera (default: tracking the root); fixed: keep it still instead."""
    from coohoi.render import IMAGE_SUFFIXES, HumanoidRenderer, TrackingCamera, write_frames

    camera = camera or TrackingCamera()
    if fixed:
        camera = fixed_camera_for(clip, camera)
    scene = build_scene(SceneConfig())
    qpos = clip_qpos(scene, clip, fps)
    if Path(out).suffix.lower() in IMAGE_SUFFIXES:
        index = int(round((time_s or 0.0) * fps))
        qpos = qpos[min(max(index, 0), len(qpos) - 1)][None]
    with HumanoidRenderer(scene, width, height, backend=backend, show_object=clip.object_pos is not None) as renderer:
        write_frames(out, (renderer.render(q, camera) for q in qpos), fps)
    return len(qpos)


def show_clip(clip: MotionClip, speed: float = 1.0, loop: bool = True) -> None:
    """Play the clip in the interactive MuJoCo viewer (needs a display), looping until the window closes."""
    import mujoco
    import mujoco.viewer

    scene = build_scene(SceneConfig())
    fps = 60.0
    qpos = clip_qpos(scene, clip, fps)
    if clip.object_pos is None:
        scene.model.geom_rgba[scene.object_geom_ids, 3] = 0.0
    data = mujoco.MjData(scene.model)
    with mujoco.viewer.launch_passive(scene.model, data) as viewer:
        frame, start = 0, time.perf_counter()
        while viewer.is_running():
            data.qpos[:] = qpos[frame]
            mujoco.mj_kinematics(scene.model, data)
            viewer.cam.lookat[:2] = data.qpos[int(scene.qpos_start[0]):int(scene.qpos_start[0]) + 2]
            viewer.sync()
            frame += 1
            if frame >= len(qpos):
                if not loop:
                    break
                frame, start = 0, time.perf_counter()
            time.sleep(max(0.0, start + frame / (fps * speed) - time.perf_counter()))
