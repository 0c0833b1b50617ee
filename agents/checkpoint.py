"""Checkpoint files: atomic writes, and loading that stops with a clear error on a bad file.

A checkpoint is rl-games' full training state (model with normalisers and discriminator, optimizer, epoch, frame,
env state) plus "coohoi": metadata naming the task and the tensor sizes it was trained for.

Loading never runs code from the file: torch.load with weights_only=True builds tensors, numbers, strings, containers
and the numpy values in SAFE_GLOBALS only, and a pickle that names anything else (a function to call on load) is
refused before it runs. Only torch's zip format is read (torch.save has written it since torch 1.6; the legacy format
allocates the sizes it declares before reading them), with every record stored uncompressed, so nothing in the file
expands beyond its size.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

# Besides what weights_only allows by default: numpy scalars and arrays (stock rl-games keeps its best reward as a
# numpy float32); their reconstruction builds data only. Object, void and variable-width string dtypes are left out.
SAFE_GLOBALS = [np.ndarray, np.dtype, np._core.multiarray.scalar, np._core.multiarray._reconstruct,
                *(getattr(np.dtypes, n) for n in dir(np.dtypes)
                  if n.endswith("DType") and n not in ("ObjectDType", "VoidDType", "StringDType"))]
# torch's weights_only messages wrap the reason in advice paragraphs; these lines are the advice.
TORCH_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation")
UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


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


def _check_archive(path: Path) -> None:
    """Refuse a file that is not a torch zip archive of uncompressed records (torch.save writes nothing else)."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty")
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a torch checkpoint (no zip archive: truncated, another "
                              f"format, or torch's legacy format): {exc}") from exc
    for record in records:
        if record.compress_type != zipfile.ZIP_STORED or record.file_size != record.compress_size or \
                record.file_size > size:
            raise CheckpointError(f"checkpoint {str(path)!r} is not a torch checkpoint: record {record.filename!r} is "
                                  f"compressed or declares {record.file_size} bytes in a {size}-byte file")
    if not any(r.filename.endswith("data.pkl") for r in records):
        raise CheckpointError(f"checkpoint {str(path)!r} is not a torch checkpoint: the zip archive has no data.pkl")


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """The saved state, read without running code from the file; a missing, empty, truncated, foreign or code-running
    file raises CheckpointError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    _check_archive(path)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = UNSAFE_GLOBAL.search(str(exc))
        if unsafe:
            raise CheckpointError(f"checkpoint {str(path)!r} refused: it asks to load {unsafe.group(1)}, which could "
                                  "run code (a checkpoint holds tensors, numbers, strings and containers only)"
                                  ) from exc
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read (corrupted or not a torch checkpoint): "
                              f"{_first_line(exc)}") from exc
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read (corrupted or not a torch checkpoint): "
                              f"{_first_line(exc)}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds no model weights (not a coohoi/rl-games checkpoint)")
    bad = [key for key, value in nested_tensors(state["model"], "model") if value.is_floating_point() and
           not bool(torch.isfinite(value).all())]
    if bad:
        raise CheckpointError(f"checkpoint {str(path)!r} holds NaN or infinite weights in {', '.join(bad[:4])}"
                              + (f" and {len(bad) - 4} more" if len(bad) > 4 else "") + " (training diverged)")
    return state


def rng_state() -> dict:
    """The process's global random streams (torch on the CPU and on every CUDA device in use, numpy, Python), as
    tensors, numbers and lists, which a weights_only load reads back."""
    import random

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                                                       "has_gauss": has_gauss, "gauss": gauss},
             "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Continue the random streams rng_state() saved."""
    import random

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_state(buffers: dict, max_bytes: int, sampled: tuple[str, ...] = ()) -> dict:
    """What nn/last.pth adds so that a resumed run continues where it stopped: the global random streams and each
    buffer (anything with state_dict(max_bytes[, sample]) and load_state_dict) that fits in max_bytes, or, for the
    buffers named in `sampled`, a sample that fits; the others are left out (None) and start anew on resume."""
    out = {name: buffer.state_dict(max_bytes, sample=True) if name in sampled else buffer.state_dict(max_bytes)
           for name, buffer in buffers.items()}
    return {"rng": rng_state(), "buffers": out}


def restore_resume_state(path, state: dict | None, buffers: dict) -> None:
    """Continue the random streams and refill the buffers of resume_state(), printing what started anew."""
    if state is None:
        print(f"{path} holds no random streams or buffers (only nn/last.pth does): buffers start anew", flush=True)
        return
    set_rng_state(state["rng"])
    notes = []
    for name, buffer in buffers.items():
        saved = state["buffers"].get(name)
        if saved is None:
            notes.append(f"the {name} buffer (over train.checkpoint_buffer_mib, not saved) "
                         + ("drawn again from the motion library" if name == "demo" else "refilled by this run"))
            continue
        buffer.load_state_dict(saved)
        if saved["count"] < saved["held"]:
            notes.append(f"the {name} buffer: a sample of {saved['count']} of its {saved['held']} rows "
                         "(train.checkpoint_buffer_mib)")
    if notes:
        print("resumed with " + "; ".join(notes), flush=True)


def nested_tensors(value, key: str = ""):
    """(dotted key, tensor) of every tensor in nested dicts (a learner's model or optimiser state)."""
    if isinstance(value, torch.Tensor):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from nested_tensors(v, f"{key}.{k}")


def _first_line(exc: Exception) -> str:
    """An exception's reason as one line (torch's weights_only messages wrap it in paragraphs of advice)."""
    lines = [line.strip() for line in str(exc).splitlines()
             if line.strip() and not line.strip().startswith(TORCH_ADVICE)]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


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
