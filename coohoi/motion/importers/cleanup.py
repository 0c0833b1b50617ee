"""What every importer does to a clip after converting it, so that imported clips are fit to train on.

STUB (being written): the interface is fixed, the steps are not implemented yet.

    clip, notes = finish_clip(clip, ImportSettings(...), source="file.bvh")

In order: repeated frames collapsed, a T-pose start trimmed, `trim` applied, the clip put on the ground, its DoF
speeds checked (refused, or filtered with `filter_speed`). Every change is reported as a note (one line each).
"""

from __future__ import annotations

from dataclasses import dataclass

from coohoi.motion.clip import MotionClip

GROUND_MODES = ("clip", "frame", "none")


@dataclass
class ImportSettings:
    """Settings every importer takes (`coohoi motion import ... --fps --trim --ground ...`)."""

    fps: float | None = None  # the data's frame rate, overriding what the file says (None: the file's)
    ground: str = "clip"  # clip: the lowest foot contact point of the clip on the floor; frame: in every frame; none
    trim: tuple[str, str] = ("0", "0")  # cut at the start and the end: frames ("12") or seconds ("0.5s")
    trim_tpose: bool = True  # detect and cut a T-pose (calibration) start
    collapse_repeats: bool = True  # detect data stored at twice its rate (every frame repeated) and collapse it
    max_dof_speed: float | None = None  # rad/s refused (None: the module's default limit)
    filter_speed: bool = False  # True: filter DoF speed spikes instead of refusing the clip


def finish_clip(clip: MotionClip, settings: ImportSettings | None = None, source: str = "clip"
                ) -> tuple[MotionClip, list[str]]:
    """The clip after the clean-up steps of the module docstring, and a note per change."""
    return clip, []


__all__ = ["GROUND_MODES", "ImportSettings", "finish_clip"]
