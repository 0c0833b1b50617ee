"""Render one frame per shipped reference skill to docs/motions/<skill>.png (480x360), so a reader can see them.

    MUJOCO_GL=egl python scripts/render_skill_frames.py [--dataset assets/motions/dataset.yaml] [--out docs/motions]

The scene is coohoi.scene.build_scene's (floor, one humanoid, the 0.5 m box); the box is moved out of view for clips
without an object. The camera looks at the pelvis from the front-left side.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import imageio.v3 as iio  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from coohoi.config import SceneConfig  # noqa: E402
from coohoi.motion.clip import MotionClip  # noqa: E402
from coohoi.scene import build_scene  # noqa: E402

WIDTH, HEIGHT = 480, 360
# Fraction of each clip at which its frame is taken: the moment that shows the skill best.
FRAME_AT = {"pickup": 0.97, "lift": 0.45, "putdown": 0.35}
DEFAULT_FRAME_AT = 0.5
CAMERA_DISTANCE = 2.8
CAMERA_ELEVATION = -15.0  # degrees
CAMERA_AZIMUTH_FROM_HEADING = 240.0  # degrees: the camera sits 60 degrees left of straight ahead
HIDDEN_OBJECT_POS = (50.0, 50.0, 0.25)


def render_frame(scene, renderer, clip: MotionClip, frame: int) -> np.ndarray:
    model = scene.model
    data = mujoco.MjData(model)
    data.qpos[:] = scene.default_qpos
    start = scene.qpos_start[0]
    data.qpos[start:start + 3] = clip.root_pos[frame]
    data.qpos[start + 3:start + 7] = clip.root_quat[frame]
    data.qpos[start + 7:start + 35] = clip.dof_pos[frame]
    obj = scene.object_qpos_start
    if clip.object_pos is not None:
        data.qpos[obj:obj + 3] = clip.object_pos[frame]
        data.qpos[obj + 3:obj + 7] = clip.object_quat[frame]
    else:
        data.qpos[obj:obj + 3] = HIDDEN_OBJECT_POS
    mujoco.mj_forward(model, data)
    w, _, _, z = clip.root_quat[frame]
    heading = np.degrees(2 * np.arctan2(z, w))
    camera = mujoco.MjvCamera()
    camera.lookat[:] = [clip.root_pos[frame][0], clip.root_pos[frame][1], 0.7]
    camera.distance = CAMERA_DISTANCE
    camera.elevation = CAMERA_ELEVATION
    camera.azimuth = heading + CAMERA_AZIMUTH_FROM_HEADING
    renderer.update_scene(data, camera)
    return renderer.render()


def main(argv: list[str] | None = None) -> None:
    from coohoi.assets import ASSET_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=ASSET_DIR / "motions" / "dataset.yaml")
    parser.add_argument("--out", type=Path, default=Path("docs/motions"))
    args = parser.parse_args(argv)
    entries = yaml.safe_load(args.dataset.read_text())["clips"]
    scene = build_scene(SceneConfig())
    renderer = mujoco.Renderer(scene.model, HEIGHT, WIDTH)
    args.out.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        clip = MotionClip.load(args.dataset.parent / entry["file"])
        frame = int(round(FRAME_AT.get(clip.name, DEFAULT_FRAME_AT) * (clip.num_frames - 1)))
        path = args.out / f"{clip.name}.png"
        iio.imwrite(path, render_frame(scene, renderer, clip, frame))
        print(f"{path}  (frame {frame} of {clip.num_frames})")


if __name__ == "__main__":
    main()
