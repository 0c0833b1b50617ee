"""Checkpoint files: atomic writes, and loading that stops with a clear error on a bad file.

A checkpoint is rl-games' full training state (model with normalisers and discriminator, optimizer, epoch, frame,
env state) plus "coohoi": metadata naming the task and the tensor sizes it was trained for.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def save_atomic(state: dict, path: str | os.PathLike) -> str:
    """torch.save to a temporary file in the same folder, then os.replace: readers never see a partial file. A path
    that does not end in .pth gets it; returns the path written."""
    path = Path(path)
    path = path if path.suffix == ".pth" else path.with_name(path.name + ".pth")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return str(path)


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read (corrupted or not a torch checkpoint): {exc}"
        ) from exc
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds no model weights (not a coohoi/rl-games checkpoint)")
    return state


def check_model_fits(path, state: dict, model: torch.nn.Module, task_name: str | None = None) -> None:
    """Raise CheckpointError naming every missing, unexpected or differently shaped tensor."""
    saved = {k.removeprefix("_orig_mod."): v for k, v in state["model"].items()}
    expected = model.state_dict()
    problems = []
    for key, value in expected.items():
        if key not in saved:
            problems.append(f"{key} missing")
        elif tuple(saved[key].shape) != tuple(value.shape):
            problems.append(f"{key} has shape {tuple(saved[key].shape)} in the checkpoint, {tuple(value.shape)} here")
    problems += [f"{key} unexpected" for key in saved if key not in expected]
    if problems:
        trained_for = state.get("coohoi", {}).get("task")
        hint = f" (it was trained for task {trained_for!r}" + (f", this run is {task_name!r})" if task_name else ")")
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit this network{hint if trained_for else ''}: {shown}"
        )


def source_commit() -> str:
    """The git commit of the coohoi source this process runs ("<sha>", "<sha>-dirty" with uncommitted changes), or
    "unknown" outside a git checkout (an installed wheel)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def run_provenance(cfg) -> dict:
    """What a checkpoint stores about its run besides the weights: the resolved config (so that play, render, export
    and eval rebuild its task) and the source commit."""
    from omegaconf import OmegaConf

    return {"config": OmegaConf.to_container(cfg, resolve=True), "commit": source_commit()}
