"""`coohoi render`: the playback of a policy filmed headless, one video per chosen environment, with the object, the
target marker and an overlay in the picture; a bad OpenGL backend stops with a one-line hint."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from coohoi.cli import main
from coohoi.config import EngineConfig
from coohoi.render import RenderError, make_gl_context

SECONDS, WIDTH, HEIGHT = 1.0, 160, 120
FRAMES = round(SECONDS / EngineConfig.policy_dt)  # one frame per policy step
# The box close enough to be in the picture from the start, the target just beyond it.
NEAR_BOX = ["task.env.box_distance_range=[1.2,1.2]", "task.env.target_distance_range=[1.0,1.0]"]
BOX_RGB = (0.55, 0.4, 0.25)  # coohoi.objects' object colour (shaded in the picture)


def _gl_or_skip():
    try:
        context, _ = make_gl_context(8, 8)
        context.free()
    except RenderError as exc:
        pytest.skip(f"no OpenGL backend for offscreen rendering: {exc}")


def _render(tmp_path, *settings, name="policy.mp4"):
    out = tmp_path / name
    assert main(["render", "render.policy=zero", f"render.seconds={SECONDS}", f"render.width={WIDTH}",
                 f"render.height={HEIGHT}", f"render.out={out}", *settings]) == 0
    return out


def _near_colour(frames: np.ndarray, rgb, tolerance: float = 0.03) -> np.ndarray:
    """Pixels whose chromaticity (colour with shading divided out) is that of rgb."""
    f = frames.astype(np.float64)
    ref = np.asarray(rgb) / np.sum(rgb)
    lit = f.sum(-1) > 60
    return lit & (np.abs(f / np.maximum(f.sum(-1, keepdims=True), 1e-9) - ref).max(-1) < tolerance)


def _check_video(path) -> np.ndarray:
    frames = iio.imread(path)
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert (frames.reshape(FRAMES, -1).std(axis=1) > 10).all(), "blank frames"
    moved = np.abs(frames[-1].astype(int) - frames[0].astype(int)).sum(-1) > 30
    assert moved.mean() > 0.002, "the playback does not move"
    return frames


def test_render_films_the_carry_playback_with_object_target_and_overlay(tmp_path, capsys):
    _gl_or_skip()
    out = _render(tmp_path, "task=carry_box", "engine.num_envs=2", *NEAR_BOX)
    assert str(out) in capsys.readouterr().out
    frames = _check_video(out)
    first = frames[0].astype(int)
    r, g, b = first[..., 0], first[..., 1], first[..., 2]
    assert _near_colour(first, BOX_RGB).sum() > 30, "the box is not in the picture"
    assert ((g > r + 40) & (g > b + 40)).sum() > 30, "the translucent green target is not in the picture"
    # The overlay: white text in the top-left corner, where the scene shows the black sky and the grey floor.
    corner = first[: HEIGHT // 4, : WIDTH * 3 // 4]
    assert (corner.min(-1) > 150).sum() > 50, "no overlay text"


def test_render_films_each_chosen_world_of_a_team_task_into_its_own_file(tmp_path, capsys):
    _gl_or_skip()
    out = _render(tmp_path, "task=team_carry_long_box", "engine.num_envs=3", "render.envs=[0,2]",
                  "render.follow=object", "render.overlay=false")
    paths = [tmp_path / "policy_env0.mp4", tmp_path / "policy_env2.mp4"]
    assert not out.exists() and all(p.exists() for p in paths)
    printed = capsys.readouterr().out
    assert all(str(p) in printed for p in paths)
    env0, env2 = (_check_video(p) for p in paths)
    assert np.abs(env0[0].astype(int) - env2[0].astype(int)).mean() > 1, "the two worlds look the same"
    assert _near_colour(env0[0], BOX_RGB).sum() > 30, "the long box the camera follows is not in the picture"


def test_render_with_a_bad_opengl_backend_stops_with_a_one_line_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MUJOCO_GL", "nonsense")
    assert main(["render", "render.policy=zero", f"render.out={tmp_path / 'x.mp4'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "MUJOCO_GL" in err and "egl" in err and "apt-get install" in err
    assert not (tmp_path / "x.mp4").exists()


def test_render_refuses_an_environment_that_does_not_exist(tmp_path, capsys):
    assert main(["render", "render.policy=zero", "engine.num_envs=2", "render.envs=[0,2]",
                 f"render.out={tmp_path / 'x.mp4'}"]) == 2
    assert "render.envs" in capsys.readouterr().err
