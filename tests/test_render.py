"""Headless rendering: the humanoid is in the picture; `coohoi motion render` writes PNG and MP4."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest

from coohoi.config import SceneConfig
from coohoi.motion.cli import main as motion_main
from coohoi.render import HumanoidRenderer, RenderError, humanoid_qpos, make_gl_context
from coohoi.scene import build_scene
from motion_clips import sinusoid_clip

WIDTH, HEIGHT = 160, 120
MIN_HUMANOID_FRACTION = 0.01  # a standing humanoid at the default camera distance covers ~2.5% of the image


def _gl_or_skip():
    try:
        context, backend = make_gl_context(8, 8)
        context.free()
        return backend
    except RenderError as exc:
        pytest.skip(f"no OpenGL backend for offscreen rendering: {exc}")


@pytest.fixture(scope="module")
def renderer():
    _gl_or_skip()
    with HumanoidRenderer(build_scene(SceneConfig()), WIDTH, HEIGHT, show_object=False) as r:
        yield r


def test_standing_humanoid_is_visible(renderer):
    scene = renderer.scene
    standing = scene.default_qpos.copy()
    away = humanoid_qpos(scene, [0.0, 0.0, -50.0], [1, 0, 0, 0], np.zeros(28))  # buried far below the floor
    seg = renderer.render(standing, segmentation=True)
    on_humanoid = np.isin(seg, renderer.humanoid_geom_ids())
    assert on_humanoid.mean() > MIN_HUMANOID_FRACTION
    assert not np.isin(renderer.render(away, segmentation=True), renderer.humanoid_geom_ids()).any()
    # In colour, the pictures with and without the humanoid differ where the humanoid is.
    rgb, empty = renderer.render(standing), renderer.render(away)
    assert rgb.shape == (HEIGHT, WIDTH, 3) and rgb.dtype == np.uint8
    changed = np.abs(rgb.astype(int) - empty.astype(int)).sum(-1) > 30
    assert changed.mean() > 0.5 * on_humanoid.mean()
    assert (changed & on_humanoid).sum() > 0.8 * changed.sum()
    # The camera tracks the root: a humanoid 5 m away is still in view.
    moved = humanoid_qpos(scene, [5.0, 3.0, 0.89], [1, 0, 0, 0], np.zeros(28))
    assert np.isin(renderer.render(moved, segmentation=True), renderer.humanoid_geom_ids()).mean() > MIN_HUMANOID_FRACTION


def test_motion_render_cli_png_and_mp4(tmp_path, capsys):
    _gl_or_skip()
    clip = sinusoid_clip(duration=0.5)
    clip.save(tmp_path / "clip.npz")
    png = tmp_path / "frame.png"
    assert motion_main(["render", str(tmp_path / "clip.npz"), "--out", str(png), "--width", str(WIDTH),
                        "--height", str(HEIGHT), "--time", "0.2"]) == 0
    image = imageio.imread(png)
    assert image.shape == (HEIGHT, WIDTH, 3)
    # Not blank: the humanoid's pixels stand out from the floor and the sky.
    assert image.std() > 10 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    mp4 = tmp_path / "clip.mp4"
    assert motion_main(["render", str(tmp_path / "clip.npz"), "--out", str(mp4), "--width", "96", "--height", "64",
                        "--fps", "20"]) == 0
    frames = [f for f in imageio.get_reader(mp4)]
    assert len(frames) == 11 and frames[0].shape == (64, 96, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5  # the motion moves
    assert "wrote" in capsys.readouterr().out
    assert motion_main(["render", str(tmp_path / "missing.npz"), "--out", str(png)]) == 2
    assert "missing.npz" in capsys.readouterr().err
