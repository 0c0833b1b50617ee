"""`coohoi play` in the interactive viewer, driven as a person would: a virtual X display (Xvfb), keys sent with
xdotool, screenshots of the window checked for the humanoid, the box and the markers; the window closed from outside,
and Ctrl-C, end the process cleanly. Without Xvfb or xdotool these tests skip, unless COOHOI_REQUIRE_VIEWER_TEST=1
(CI), which makes them fail. Without a display, play stops at once with a one-line hint."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from coohoi.agents.play import play
from coohoi.cli import compose, main
from coohoi.config import SceneConfig
from coohoi.render import RenderError
from coohoi.scene import build_scene

REQUIRED = os.environ.get("COOHOI_REQUIRE_VIEWER_TEST") == "1"
STARTUP_TIMEOUT_S = 60  # python, torch, the env and the window, on a busy 2-core machine
KEY_TIMEOUT_S = 20
EXIT_TIMEOUT_S = 10
# The box a little ahead and the target just beyond it: all of it in the picture from the start.
PLAY = ["play", "task=carry_box", "play.policy=zero", "engine.num_envs=2", "task.env.box_distance_range=[1.2,1.2]",
        "task.env.target_distance_range=[1.0,1.0]"]
# A team of four at the rectangular table, on TeamHOI's circle around it.
TEAM_PLAY = ["play", "task=team_carry_table", "play.policy=zero", "engine.num_envs=1", "task.scene.num_humanoids=4",
             "task.env.team_size_range=[4,4]"]
STEPS = 50  # single steps of the zero action: the humanoid sinks to its knees (it falls over at step 54)
MIN_PIXELS = 1000  # the humanoid and the box each cover 3000-6000 pixels of the 682x512 window


def _missing_tools() -> list[str]:
    from PIL import features

    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    return missing + ([] if features.check("xcb") else ["Pillow with XCB support (ImageGrab of an X display)"])


@pytest.fixture
def xdisplay():
    """A fresh Xvfb display on a free number (Xvfb picks it: -displayfd)."""
    missing = _missing_tools()
    if missing:
        (pytest.fail if REQUIRED else pytest.skip)(f"the viewer test needs {', '.join(missing)} "
                                                    "(Debian: apt-get install -y xvfb xdotool)")
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 20)
        number = os.read(read, 32).decode().strip() if ready else ""
        assert number.isdigit(), "Xvfb did not start"
        yield f":{number}"
    finally:
        os.close(read)
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()


def _collect(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


class Player:
    """`coohoi play` in a child process on `display`, its output collected line by line as it comes."""

    def __init__(self, display: str, args: list[str]):
        env = dict(os.environ, DISPLAY=display, MUJOCO_GL="glfw", PYTHONUNBUFFERED="1")
        env.pop("WAYLAND_DISPLAY", None)
        self.display, self.lines, self.err = display, [], []
        self.proc = subprocess.Popen([sys.executable, "-m", "coohoi.cli", *args], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for stream, into in ((self.proc.stdout, self.lines), (self.proc.stderr, self.err)):
            threading.Thread(target=_collect, args=(stream, into), daemon=True).start()

    def xdotool(self, *args: str, timeout: float = KEY_TIMEOUT_S) -> str:
        return subprocess.run(["xdotool", *args], env=dict(os.environ, DISPLAY=self.display), capture_output=True,
                              text=True, timeout=timeout, check=True).stdout

    def window(self) -> str:
        try:
            found = self.xdotool("search", "--sync", "--onlyvisible", "--name", "^MuJoCo", timeout=STARTUP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no viewer window; stdout: {''.join(self.lines)} stderr: {''.join(self.err)}")
        self.id = found.split()[0]
        return self.id

    def key(self, *keys: str, repeat: int = 1) -> None:
        self.xdotool("key", "--window", self.id, "--delay", "20", "--repeat", str(repeat), *keys)

    def wait_for(self, line: str, count: int = 1, prefix: bool = False) -> None:
        """Until the player has printed `line` (a whole line, or the start of one) `count` times: the keys have been
        handled."""
        deadline = time.monotonic() + KEY_TIMEOUT_S
        printed = (lambda x: x.strip().startswith(line)) if prefix else (lambda x: x.strip() == line)
        while sum(map(printed, self.lines)) < count:
            assert time.monotonic() < deadline and self.proc.poll() is None, (
                f"no {line!r}; stdout: {''.join(self.lines)} stderr: {''.join(self.err)}")
            time.sleep(0.05)

    def screenshot(self, settle: bool = True) -> np.ndarray:
        """The window's pixels [H, W, 3]; settled: once two grabs 0.2 s apart agree (a paused viewer's new frame)."""
        from PIL import ImageGrab

        geometry = dict(re.findall(r"(\w+)=(\d+)", self.xdotool("getwindowgeometry", "--shell", self.id)))
        x, y, w, h = (int(geometry[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
        grab = lambda: np.asarray(ImageGrab.grab(xdisplay=self.display).convert("RGB"))[y:y + h, x:x + w]  # noqa: E731
        time.sleep(0.3)
        shot = grab()
        for _ in range(25 if settle else 0):
            time.sleep(0.2)
            shot, previous = grab(), shot
            if np.array_equal(shot, previous):
                break
        return shot

    def wait_exit(self) -> int:
        try:
            return self.proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the player did not exit within {EXIT_TIMEOUT_S} s of its window closing (a hang)")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _scene_colours() -> tuple[np.ndarray, np.ndarray]:
    """The humanoid's main colour and the box's, from the compiled scene."""
    scene = build_scene(SceneConfig())
    rgba = scene.model.geom_rgba
    colours, counts = np.unique(rgba[np.isin(scene.model.geom_bodyid, scene.body_ids[0]), :3], axis=0,
                                return_counts=True)
    return colours[counts.argmax()], rgba[scene.object_geom_ids[0], :3]


def _near_colour(shot: np.ndarray, rgb, tolerance: float = 0.03) -> np.ndarray:
    """Pixels whose chromaticity (colour with shading divided out) is that of rgb."""
    f = shot.astype(np.float64)
    ref = np.asarray(rgb, dtype=np.float64) / np.sum(rgb)
    return (f.sum(-1) > 120) & (np.abs(f / np.maximum(f.sum(-1, keepdims=True), 1e-9) - ref).max(-1) < tolerance)


def _height(mask: np.ndarray) -> float:
    """Vertical extent in pixels of a mask (robust to a few stray pixels)."""
    rows = np.nonzero(mask)[0]
    return float(np.percentile(rows, 99) - np.percentile(rows, 1))


def _markers(shot: np.ndarray) -> int:
    """Pixels of the green target and the blue standing point."""
    r, g, b = (shot[..., i].astype(int) for i in range(3))
    return int(((g > r + 40) & (g > b + 40)).sum() + ((b > r + 80) & (b > g + 40)).sum())


def _differ(a: np.ndarray, b: np.ndarray) -> int:
    return int((np.abs(a.astype(int) - b.astype(int)).sum(-1) > 30).sum())


def test_viewer_plays_pauses_steps_resets_switches_and_closes_like_a_person_would(xdisplay):
    human, box = _scene_colours()
    player = Player(xdisplay, PLAY)
    try:
        player.window()
        deadline = time.monotonic() + KEY_TIMEOUT_S  # the window may show before its first frame
        while True:
            playing = player.screenshot(settle=False)
            if _near_colour(playing, human).sum() > MIN_PIXELS or time.monotonic() > deadline:
                break
        assert _near_colour(playing, human).sum() > MIN_PIXELS, "the humanoid is not in the picture"

        # Pause, then a fresh episode of the shown environment: a known frame, whatever the playing humanoid did
        # meanwhile (on a busy machine it may have fallen in front of the box).
        player.key("Return", "Home")
        player.wait_for("reset env 0")
        upright = player.screenshot()
        assert _near_colour(upright, human).sum() > MIN_PIXELS, "the humanoid is not in the picture"
        assert _near_colour(upright, box).sum() > MIN_PIXELS, "the box is not in the picture"
        assert _markers(upright) > 100, "the target and standing point are not drawn"
        player.key("period", repeat=STEPS)  # single steps: the zero action lets the humanoid sink to its knees
        player.wait_for(f"step {STEPS}")
        sunk = player.screenshot()
        assert _differ(sunk, upright) > MIN_PIXELS
        assert _height(_near_colour(sunk, human)) < 0.9 * _height(_near_colour(upright, human))
        player.key("Home")  # reset: upright again
        player.wait_for("reset env 0", count=2)
        again = player.screenshot()
        assert _differ(again, sunk) > MIN_PIXELS
        assert _height(_near_colour(again, human)) > 0.95 * _height(_near_colour(upright, human))

        player.key("7")  # the next environment: its own world (and the status text says so)
        player.wait_for("env 1 of 2")
        other = player.screenshot()
        assert _differ(other, again) > 0
        assert _near_colour(other, human).sum() > MIN_PIXELS
        player.key("Insert")  # hide the markers
        player.wait_for("markers off")
        bare = player.screenshot()
        assert _markers(other) > 100 and _markers(bare) < 0.05 * _markers(other)
        player.key("9", "8", "8", "6")  # faster, slower twice, back to the first environment
        for line in ("speed 2x", "speed 1x", "speed 0.5x", "env 0 of 2"):
            player.wait_for(line)

        player.xdotool("windowclose", player.id)  # the window destroyed under the viewer: no X error, no hang
        assert player.wait_exit() == 0, "".join(player.err)
        time.sleep(0.2)  # the output threads drain the pipes
        assert "Traceback" not in "".join(player.err) and "X Error" not in "".join(player.err), "".join(player.err)
        assert any(line.startswith('{"num_episodes"') for line in player.lines)  # the episode metrics at the end
    finally:
        player.kill()


def test_a_team_plays_in_the_viewer_and_ctrl_c_ends_it_cleanly(xdisplay):
    """Four humanoids and the table in one world: the table, the humanoids and every agent's markers are in the
    picture; Ctrl-C ends the process with exit code 0."""
    from coohoi.config import ObjectConfig

    human, _ = _scene_colours()
    scene = build_scene(SceneConfig(object=ObjectConfig(kind="table")))
    table_rgb = scene.model.geom_rgba[scene.object_geom_ids[0], :3]
    player = Player(xdisplay, TEAM_PLAY)
    try:
        player.window()
        player.key("Return")  # pause: a still frame
        player.wait_for("paused at step", prefix=True)
        shot = player.screenshot()
        assert _near_colour(shot, table_rgb).sum() > MIN_PIXELS, "the table is not in the picture"
        assert _near_colour(shot, human).sum() > 200, "no humanoid in the picture"
        assert _markers(shot) > 400, "the standing points and the target are not drawn"
        player.proc.send_signal(signal.SIGINT)
        assert player.wait_exit() == 0, "".join(player.err)
        time.sleep(0.2)
        assert "Traceback" not in "".join(player.err), "".join(player.err)
    finally:
        player.kill()


def test_play_without_a_display_stops_at_once_with_a_one_line_hint(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    args = ["task=carry_box", "play.policy=zero", "engine.num_envs=2"]
    start = time.perf_counter()
    with pytest.raises(RenderError) as error:
        play(compose(args), args)
    assert time.perf_counter() - start < 2.0  # before the env is built
    message = str(error.value)
    assert "\n" not in message and "coohoi render" in message and "play.headless=true" in message
    assert main(["play", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "coohoi render" in err
