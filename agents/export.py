"""`coohoi export`: a trained actor as ONNX and TorchScript, with a metadata JSON beside them.

    coohoi export checkpoint=runs/carry_box/nn/last.pth                  # runs/carry_box/nn/last.{onnx,pt,json}
    coohoi export checkpoint=runs/x/nn/last.pth export.out=deploy/carry  # deploy/carry.{onnx,pt,json}

Both files hold the same computation as coohoi.agents.policy.DeployedActor: observations [batch, num_obs] float32
-> normalised and clipped (the run's observation normaliser) -> MLP (-> tanh for the off-policy learner) -> actions
clamped to [-1, 1] ([batch, num_actions]). The env turns an action into PD targets as `offset + scale * action`;
the metadata (also embedded in the ONNX file's metadata_props under "coohoi") says so with the numbers: observation
layout per group, action scale and offset, joint and body order, PD gains and torque limits, control period,
quaternion convention, the commits of training and export, and the config the policy runs with (its training run's
task and training settings, the export command line's task.* settings on top).

The export checks itself before anything is written where you asked: onnxruntime and TorchScript must give the
same actions as torch on `export.parity_samples` random observations (spread around the normaliser's statistics)
to `export.parity_tolerance`; otherwise it stops and leaves no file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from coohoi.agents.checkpoint import CheckpointError, source_commit
from coohoi.agents.config import ExportConfig, section_config
from coohoi.agents.policy import (METADATA_SUFFIX, ONNX_SUFFIX, check_compatible, load_policy, onnx_session,
                                  policy_run_config)

FORMAT = "coohoi-policy"
FORMAT_VERSION = 1
TORCHSCRIPT_SUFFIX = ".pt"
# Parity observations: the normaliser's mean plus this many of its standard deviations times a standard normal
# sample (most land inside the +-5 std clip, some beyond it, so the clip is exercised too).
PARITY_SPREAD = 3.0
PARITY_SEED = 0


class ExportError(ValueError):
    """An export that cannot be trusted (parity failed) or cannot be written; the message says which."""


def parity_observations(actor, n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(PARITY_SEED)
    noise = torch.randn(n, actor.num_obs, generator=generator)
    return (actor.obs_mean + PARITY_SPREAD * actor.obs_std * noise).to(torch.float32)


def _write_graphs(actor, obs: torch.Tensor, folder: Path, opset: int) -> tuple[Path, Path, dict[str, float]]:
    """Write the actor as ONNX and TorchScript into folder; returns both paths and each one's largest action
    difference from torch on obs."""
    import onnx

    onnx_path, script_path = folder / f"p{ONNX_SUFFIX}", folder / f"p{TORCHSCRIPT_SUFFIX}"
    with warnings.catch_warnings():  # torch deprecates both writers in favour of torch.export; both still work
        warnings.simplefilter("ignore")
        torch.onnx.export(actor, (obs[:1],), str(onnx_path), input_names=["obs"], output_names=["actions"],
                          dynamic_axes={"obs": {0: "batch"}, "actions": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
        torch.jit.trace(actor, (obs[:1],)).save(str(script_path))
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    with torch.no_grad():
        expected, scripted = actor(obs), torch.jit.load(str(script_path))(obs)
    exported = torch.from_numpy(onnx_session(onnx_path).run(None, {"obs": obs.numpy()})[0])
    diffs = {"onnxruntime": float((exported - expected).abs().max()),
             "torchscript": float((scripted - expected).abs().max())}
    return onnx_path, script_path, diffs


def export_files(policy, env, stem: Path, settings: ExportConfig, run_cfg: DictConfig) -> dict:
    """Write <stem>.onnx, <stem>.pt and <stem>.json for a checkpoint policy, after checking their parity with torch
    (a failure leaves nothing behind, not even the folders it made). Returns the metadata written."""
    import onnx

    actor = policy.actor.to("cpu").eval()
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "task": policy.metadata.get("task"), "algo": policy.metadata.get("algo", "ppo"),
        "inputs": {"obs": ["batch", actor.num_obs]}, "outputs": {"actions": ["batch", actor.num_actions]},
        "graph": "observation normaliser and clip, MLP, action clamp to [-1, 1] (coohoi.agents.policy.DeployedActor)",
        **env.policy_metadata(),
        "source": {"checkpoint": policy.source, "commit": policy.metadata.get("commit", "unknown"),
                   "export_commit": source_commit(), "exported": datetime.now(timezone.utc).isoformat(),
                   "epoch": policy.metadata.get("epoch")},
        "config": OmegaConf.to_container(run_cfg, resolve=True),
    }
    created = [folder for folder in (stem.parent, *stem.parent.parents) if not folder.exists()]  # deepest first
    stem.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=stem.parent, prefix=f".{stem.name}.export") as tmp:
            onnx_path, script_path, diffs = _write_graphs(
                actor, parity_observations(actor, settings.parity_samples), Path(tmp), int(settings.opset))
            meta["parity"] = {"samples": int(settings.parity_samples), "tolerance": float(settings.parity_tolerance),
                              "max_abs_diff": diffs}
            bad = {k: v for k, v in diffs.items() if not v <= settings.parity_tolerance}
            if bad:
                raise ExportError(f"export of {policy.source!r} failed its parity check: largest action "
                                  f"differences {bad} exceed export.parity_tolerance="
                                  f"{settings.parity_tolerance:g}; nothing written")
            model = onnx.load(str(onnx_path))
            entry = model.metadata_props.add()
            entry.key, entry.value = "coohoi", json.dumps(meta)
            onnx.save(model, str(onnx_path))
            json_path = Path(tmp) / f"p{METADATA_SUFFIX}"
            json_path.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
            for src, suffix in ((onnx_path, ONNX_SUFFIX), (script_path, TORCHSCRIPT_SUFFIX),
                                (json_path, METADATA_SUFFIX)):
                os.replace(src, stem.with_name(stem.name + suffix))
    except BaseException:
        for folder in created:
            folder.rmdir()
        raise
    return meta


def export(cfg: DictConfig, overrides: list[str] = ()) -> int:
    """Export cfg.checkpoint's actor (see the module docstring); prints the files and the parity reached."""
    from coohoi.envs import make_env

    settings = section_config("export", cfg.export)
    if not cfg.get("checkpoint"):
        raise ValueError("coohoi export needs checkpoint=PATH (a .pth checkpoint of either learner)")
    if str(cfg.checkpoint).endswith(ONNX_SUFFIX):
        raise CheckpointError(f"{cfg.checkpoint!r} is already an exported policy; export takes a .pth checkpoint")
    policy = load_policy(cfg.checkpoint)
    run_cfg = policy_run_config(cfg, list(overrides), policy)
    # The metadata describes the env the policy was trained for; one world on the CPU engine builds it.
    env = make_env(OmegaConf.merge(run_cfg, {"engine": {"num_envs": 1, "name": "mujoco", "device": "cpu"}}))
    check_compatible(policy, env)
    source = Path(policy.source)
    stem = Path(settings.out) if settings.out else source.with_suffix("")
    meta = export_files(policy, env, stem, settings, run_cfg)
    diffs = meta["parity"]["max_abs_diff"]
    print(f"wrote {stem}{ONNX_SUFFIX}, {stem}{TORCHSCRIPT_SUFFIX} and {stem}{METADATA_SUFFIX} "
          f"({meta['observation']['policy_size']} observations -> {meta['action']['size']} actions); parity on "
          f"{meta['parity']['samples']} observations: onnxruntime {diffs['onnxruntime']:.1e}, "
          f"TorchScript {diffs['torchscript']:.1e} (tolerance {settings.parity_tolerance:g})", flush=True)
    return 0


__all__ = ["ExportError", "export", "export_files", "parity_observations"]
