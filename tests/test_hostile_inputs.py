"""Hostile inputs: every loader refuses a damaged, foreign, oversized or code-running file with its own clear error
(MotionFormatError, CheckpointError, ConfigError: ValueError subclasses naming the file or setting), and never runs
code, crashes, hangs or allocates what a file merely declares.

Property tests run HYPOTHESIS_PROFILE's example counts: COOHOI_HYPOTHESIS=thorough runs many more, and so does
`pytest -m slow` (test_every_property_holds_over_many_examples)."""

from __future__ import annotations

import collections
import io
import os
import pickle
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from coohoi import humanoid as hum
from coohoi.agents.checkpoint import CheckpointError, check_model_fits, load_checkpoint, save_atomic
from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.importers.ase import export_ase, import_ase
from coohoi.motion.importers.bvh import export_bvh, import_bvh, parse_bvh
from coohoi.motion.importers.cleanup import ImportSettings
from coohoi.motion.importers.retarget import RetargetConfig
from coohoi.motion.importers.safe_load import load_npy
from motion_clips import sinusoid_clip

settings.register_profile("coohoi", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HYPOTHESIS_PROFILE = os.environ.get("COOHOI_HYPOTHESIS", "coohoi")
settings.load_profile(HYPOTHESIS_PROFILE)
SLOW_EXAMPLES = 300  # per property in the slow test
MAX_SECONDS = 20.0  # one load of one hostile file
MAX_TRACED_BYTES = 256 << 20  # numpy memory one load may take (a real retarget of a short clip peaks near 70 MiB)
HUGE = 10**12  # elements or frames a hostile file declares
TINY_RETARGET = RetargetConfig(iterations=5, window_iterations=0, ground="none")
FAST_SETTINGS = ImportSettings(ground="none")
CLIP_SECONDS = 0.2
CLIP_FRAMES = 7  # at 30 fps
# CMU joint names for our bodies: an exported BVH with these takes the retargeting path.
CMU_NAMES = {"pelvis": "Hips", "torso": "Spine", "head": "Neck1", "right_upper_arm": "RightArm",
             "right_lower_arm": "RightForeArm", "right_hand": "RightHand", "left_upper_arm": "LeftArm",
             "left_lower_arm": "LeftForeArm", "left_hand": "LeftHand", "right_thigh": "RightUpLeg",
             "right_shin": "RightLeg", "right_foot": "RightFoot", "left_thigh": "LeftUpLeg", "left_shin": "LeftLeg",
             "left_foot": "LeftFoot"}
BVH_TOKENS = ["{", "}", "JOINT", "ROOT", "End", "Site", "OFFSET", "CHANNELS", "MOTION", "Frames:", "Frame", "Time:",
              "HIERARCHY", "Xrotation", "Yposition", "0", "-1", "6", "7", "2", "nan", "inf", "-inf", "1e999", "1e308",
              "²", "٣", "0x1f", "1_0", "", "\x00", "Hips", str(HUGE), "-0", ".", "e"]
CONFIG_KEYS = ["engine.num_envs", "engine.policy_dt", "engine.name", "engine.decimation", "train.max_epochs",
               "train.algo", "task", "train", "task.scene.object.size", "task.scene.physics_dt",
               "task.env.episode_length",
               "seed", "checkpoint", "resume", "output_dir", "torch_threads", "train.eval.every", "nope", "task.nope",
               "engine", "task.scene.contact.solref", "bench", "task.env_type", "train.td3.batch_size"]
CONFIG_ERRORS = (ValueError, HydraException, OmegaConfBaseException)  # what `coohoi` reports as a usage error


class _WritesMarker:
    """A pickled object whose unpickling would run code: it calls os.system to create a marker file."""
    marker = Path(tempfile.gettempdir()) / "coohoi_hostile_marker"

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bounded(load, *args, errors=(MotionFormatError,), **kwargs):
    """Run a loader on a hostile input: its result, or None when it refused with one of errors. Fails when it raised
    anything else, took longer than MAX_SECONDS, or made numpy allocate more than MAX_TRACED_BYTES."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        return load(*args, **kwargs)
    except errors as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), f"unclear message: {exc!r}"
        return None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert time.monotonic() - start < MAX_SECONDS, f"{load.__name__} took {time.monotonic() - start:.1f} s"
        assert peak < MAX_TRACED_BYTES, f"{load.__name__} allocated {peak / 2**20:.0f} MiB"


def _tmp(name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="coohoi_hostile_"))
    return folder / name


def _npy_header(shape, descr="<f8") -> bytes:
    """A .npy file that declares shape and holds 16 bytes of data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\x00" * 16


# ---- checkpoints -----------------------------------------------------------------------------------------------

def _state(**extra) -> dict:
    model = {"actor.weight": torch.randn(4, 3), "actor.bias": torch.zeros(4), "running_count": torch.tensor(5)}
    return {"model": model, "epoch": 3, "frame": 96, "optimizer": {"state": {}, "param_groups": []},
            "coohoi": {"task": "carry_box", "algo": "ppo"}, "last_mean_rewards": np.float32(-2.5), **extra}


class _Marker:
    """Stands for a storage in a crafted torch pickle (see _crafted_checkpoint)."""


class _CraftingPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", torch.FloatStorage, "0", "cpu", obj.numel) if isinstance(obj, _Marker) else None


class _CraftedTensor:
    def __init__(self, numel, size):
        self.numel, self.size = numel, size

    def __reduce__(self):
        marker = _Marker()
        marker.numel = self.numel
        return (torch._utils._rebuild_tensor_v2, (marker, 0, self.size, (1,), False, collections.OrderedDict()))


def _crafted_checkpoint(path: Path, obj) -> Path:
    """A real torch zip checkpoint whose data.pkl is replaced by obj pickled as torch would (storage 0 holds 4
    floats)."""
    torch.save({"model": {"w": torch.zeros(4)}}, path)
    buf = io.BytesIO()
    _CraftingPickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path) as src:
        records = [(info, buf.getvalue() if info.filename.endswith("data.pkl") else src.read(info))
                   for info in src.infolist()]
    with zipfile.ZipFile(path, "w") as dst:
        for info, data in records:
            dst.writestr(info, data)
    return path


def test_project_style_checkpoints_load_with_numpy_scalars_and_arrays(tmp_path):
    path = save_atomic(_state(env_state={"level": np.float64(0.5), "ids": np.arange(3)}), tmp_path / "last.pth")
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and state["last_mean_rewards"] == np.float32(-2.5)
    assert torch.equal(state["model"]["actor.bias"], torch.zeros(4)) and list(state["env_state"]["ids"]) == [0, 1, 2]


def test_checkpoint_that_runs_code_on_load_is_refused_and_the_code_never_runs(tmp_path):
    _WritesMarker.marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pth"
    torch.save(_state(payload=_WritesMarker()), path)
    with pytest.raises(CheckpointError, match=r"evil\.pth.*refused.*(posix|os|nt)\.system"):
        load_checkpoint(path)
    assert not _WritesMarker.marker.exists()


def test_checkpoint_naming_any_other_class_is_refused(tmp_path):
    path = tmp_path / "object.pth"
    torch.save(_state(config=_Marker()), path)
    with pytest.raises(CheckpointError, match=r"object\.pth.*refused.*test_hostile_inputs\._Marker"):
        load_checkpoint(path)


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"), (b"not a checkpoint at all\n", "not a torch checkpoint"),
    (b"PK\x03\x04" + b"\x00" * 40, "not a torch checkpoint"), (pickle.dumps({"model": {}}), "not a torch checkpoint"),
])
def test_empty_foreign_and_plain_pickle_files_are_refused(tmp_path, content, match):
    (tmp_path / "bad.pth").write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"bad\.pth.*{match}"):
        load_checkpoint(tmp_path / "bad.pth")


def test_missing_file_legacy_format_and_a_file_without_weights_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pth")
    torch.save(_state(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"legacy\.pth.*legacy format"):
        load_checkpoint(tmp_path / "legacy.pth")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth.*no model weights"):
        load_checkpoint(tmp_path / "other.pth")


def test_compressed_records_are_refused_before_torch_expands_them(tmp_path):
    path = save_atomic(_state(), tmp_path / "packed.pth")
    with zipfile.ZipFile(path) as src:
        records = [(info.filename, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name, data in records:
            dst.writestr(name, data)
    with pytest.raises(CheckpointError, match=r"packed\.pth.*compressed"):
        load_checkpoint(path)


@pytest.mark.parametrize("numel, size", [(HUGE, (HUGE,)), (4, (HUGE,)), (HUGE, (4,)), (4, (2, -3))])
def test_checkpoint_declaring_huge_or_impossible_tensors_is_refused(tmp_path, numel, size):
    path = _crafted_checkpoint(tmp_path / "huge.pth", {"model": {"w": _CraftedTensor(numel, size)}})
    assert _bounded(load_checkpoint, path, errors=(CheckpointError,)) is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_checkpoint_with_non_finite_weights_is_refused_naming_the_tensor(tmp_path, value):
    state = _state()
    state["model"]["actor.weight"][1, 2] = value
    path = save_atomic(state, tmp_path / "diverged.pth")
    with pytest.raises(CheckpointError, match=r"diverged\.pth.*NaN or infinite.*model\.actor\.weight"):
        load_checkpoint(path)


def test_checkpoint_of_other_shapes_is_refused_naming_each_tensor(tmp_path):
    net = torch.nn.Linear(3, 4)
    state = {"model": {"weight": torch.zeros(5, 3), "bias": torch.zeros(4, dtype=torch.int64)}, "coohoi": {}}
    with pytest.raises(CheckpointError, match=r"net\.pth.*weight has shape \(5, 3\)"):
        check_model_fits("net.pth", state, net)


_VALID_CHECKPOINT = io.BytesIO()
torch.save(_state(), _VALID_CHECKPOINT)


@given(cut=st.integers(0, len(_VALID_CHECKPOINT.getvalue())),
       flips=st.lists(st.tuples(st.integers(0, len(_VALID_CHECKPOINT.getvalue()) - 1), st.integers(1, 255)),
                      max_size=4))
def test_truncated_or_damaged_checkpoints_load_exactly_or_are_refused(cut, flips):
    data = bytearray(_VALID_CHECKPOINT.getvalue())
    for at, mask in flips:
        data[at] ^= mask
    path = _tmp("damaged.pth")
    path.write_bytes(bytes(data[:cut]))
    state = _bounded(load_checkpoint, path, errors=(CheckpointError,))
    assert state is None or isinstance(state["model"], dict)


_OBJECTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)


@given(model=_OBJECTS, rest=st.dictionaries(st.text(max_size=6), _OBJECTS, max_size=3))
def test_checkpoints_of_arbitrary_plain_content_load_or_are_refused(model, rest):
    path = _tmp("plain.pth")
    torch.save({**rest, "model": model}, path)
    state = _bounded(load_checkpoint, path, errors=(CheckpointError,))
    assert state is None or isinstance(state["model"], dict)


# ---- ASE .npy dictionaries -------------------------------------------------------------------------------------

def _ase_file(path: Path, mutate=None) -> Path:
    export_ase(sinusoid_clip(CLIP_SECONDS), path)
    if mutate is not None:
        d = np.load(path, allow_pickle=True).item()
        mutate(d)
        np.save(path, np.array(d, dtype=object), allow_pickle=True)
    return path


def _arrays(max_side=20):
    dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_, np.complex64, "U3", "S2", "M8[s]"])
    shapes = st.lists(st.integers(0, max_side), max_size=4).map(tuple)
    return st.builds(lambda dtype, shape, fill: np.full(shape, fill).astype(dtype) if np.prod(shape) else
                     np.zeros(shape, dtype), dtypes, shapes, st.sampled_from([0.0, 1.0, -1.0, np.nan, np.inf, 1e300]))


_VALUES = _OBJECTS | _arrays() | st.builds(lambda a: {"arr": a}, _arrays())
_ASE_KEYS = ["rotation", "root_translation", "skeleton_tree", "fps", "is_local", "__name__", "global_velocity"]
_TREE_KEYS = ["node_names", "parent_indices", "local_translation"]


@given(changes=st.lists(st.tuples(st.sampled_from(_ASE_KEYS + [f"tree.{k}" for k in _TREE_KEYS]),
                                  st.none() | _VALUES), min_size=1, max_size=3))
def test_ase_files_with_missing_or_wrong_values_import_or_are_refused(changes):
    def mutate(d):
        for key, value in changes:
            target = d.get("skeleton_tree") if key.startswith("tree.") else d
            target = target if isinstance(target, dict) else d
            key = key.removeprefix("tree.")
            target.pop(key, None) if value is None else target.__setitem__(key, value)

    path = _ase_file(_tmp("walk.npy"), mutate)
    result = _bounded(import_ase, path, settings=FAST_SETTINGS)
    assert result is None or np.all(np.isfinite(result[0].dof_pos))


_VALID_ASE = _ase_file(_tmp("valid.npy")).read_bytes()


@given(cut=st.integers(0, len(_VALID_ASE)), at=st.integers(0, len(_VALID_ASE) - 1), byte=st.integers(0, 255))
def test_truncated_or_damaged_ase_files_import_or_are_refused(cut, at, byte):
    data = bytearray(_VALID_ASE)
    data[at] = byte
    path = _tmp("cut.npy")
    path.write_bytes(bytes(data[:cut]))
    _bounded(import_ase, path, settings=FAST_SETTINGS)


def test_npy_whose_header_breaks_pythons_tokenizer_is_refused(tmp_path):
    data = bytearray(_VALID_ASE[:128])
    data[59] = 0
    (tmp_path / "cut.npy").write_bytes(bytes(data))
    with pytest.raises(MotionFormatError, match=r"cut\.npy.*not a \.npy file"):
        load_npy(tmp_path / "cut.npy")


@pytest.mark.parametrize("shape, descr", [((HUGE,), "<f8"), ((HUGE, 15, 4), "<f4"), ((2**62, 2**62), "<f8"),
                                          ((10**9,), "<f8"), ((HUGE,), "|O")])
def test_npy_declaring_a_huge_array_is_refused_before_allocating(tmp_path, shape, descr):
    path = tmp_path / "huge.npy"
    path.write_bytes(_npy_header(shape, descr))
    with pytest.raises(MotionFormatError, match="huge.npy"):
        _bounded(load_npy, path, errors=())
    assert _bounded(import_ase, path) is None


def test_ase_file_that_runs_code_is_refused_and_the_code_never_runs(tmp_path):
    _WritesMarker.marker.unlink(missing_ok=True)
    path = _ase_file(tmp_path / "evil.npy", lambda d: d.update(is_local=_WritesMarker()))
    with pytest.raises(MotionFormatError, match=r"evil\.npy.*system"):
        import_ase(path)
    assert not _WritesMarker.marker.exists()


@pytest.mark.parametrize("key, value, match", [
    ("tree.node_names", 15, "node_names"), ("tree.node_names", None, "node_names"),
    ("is_local", [True, False], "is_local"), ("fps", "thirty", "fps"), ("skeleton_tree", [1, 2], "skeleton_tree"),
])
def test_ase_values_of_the_wrong_kind_are_refused_naming_the_key(tmp_path, key, value, match):
    def mutate(d):
        target = d["skeleton_tree"] if key.startswith("tree.") else d
        target[key.removeprefix("tree.")] = value

    with pytest.raises(MotionFormatError, match=rf"walk\.npy.*{match}"):
        import_ase(_ase_file(tmp_path / "walk.npy", mutate), settings=FAST_SETTINGS)


# ---- BVH -------------------------------------------------------------------------------------------------------

def _bvh_text(names=None) -> str:
    path = _tmp("walk.bvh")
    export_bvh(sinusoid_clip(CLIP_SECONDS), path, names=names)
    return path.read_text()


_VALID_BVH = {"own": _bvh_text(), "cmu": _bvh_text(CMU_NAMES)}


def _import_bvh(path):
    return import_bvh(path, retarget_cfg=TINY_RETARGET, settings=FAST_SETTINGS)


@given(rig=st.sampled_from(sorted(_VALID_BVH)), data=st.data())
def test_bvh_files_with_replaced_inserted_or_dropped_tokens_import_or_are_refused(rig, data):
    tokens = _VALID_BVH[rig].split()
    for _ in range(data.draw(st.integers(1, 4))):
        if not tokens:
            break
        at = data.draw(st.integers(0, len(tokens) - 1))
        action = data.draw(st.sampled_from(["replace", "insert", "drop", "cut"]))
        token = data.draw(st.sampled_from(BVH_TOKENS) | st.text(max_size=4))
        if action == "replace":
            tokens[at] = token
        elif action == "insert":
            tokens.insert(at, token)
        elif action == "drop":
            tokens.pop(at)
        else:
            tokens = tokens[:at]
    path = _tmp("mutated.bvh")
    path.write_text(" ".join(tokens), errors="surrogateescape")
    if _bounded(parse_bvh, path) is not None:
        _bounded(_import_bvh, path)


@given(text=st.lists(st.sampled_from(BVH_TOKENS) | st.text(max_size=3), max_size=60).map(" ".join))
def test_random_text_is_refused_as_bvh(text):
    path = _tmp("random.bvh")
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    assert _bounded(parse_bvh, path) is None or "MOTION" in text


@pytest.mark.parametrize("header, match", [
    (f"Frames: {HUGE}\nFrame Time: 0.03", "truncated MOTION"), ("Frames: ²\nFrame Time: 0.03", "frames"),
    (f"Frames: {CLIP_FRAMES}\nFrame Time: 1e-320", "Frame Time"),
    (f"Frames: {CLIP_FRAMES}\nFrame Time: nan", "Frame Time"),
])
def test_bvh_declaring_huge_or_odd_motion_sizes_is_refused_without_allocating(tmp_path, header, match):
    text = _VALID_BVH["own"]
    head, _, rest = text.partition("Frames:")
    body = rest.split("\n", 2)[2]
    (tmp_path / "huge.bvh").write_text(head + header + "\n" + body)
    with pytest.raises(MotionFormatError, match=rf"huge\.bvh.*{match}"):
        _bounded(parse_bvh, tmp_path / "huge.bvh", errors=())


def test_bvh_with_an_odd_channel_count_is_refused(tmp_path):
    (tmp_path / "odd.bvh").write_text(_VALID_BVH["own"].replace("CHANNELS 6", "CHANNELS ⁶", 1))
    with pytest.raises(MotionFormatError, match=r"odd\.bvh.*channel count"):
        parse_bvh(tmp_path / "odd.bvh")


def test_bvh_nested_deeper_than_python_recursion_is_refused(tmp_path):
    depth = 5000
    joints = "".join(f"JOINT j{i} {{ OFFSET 0 1 0 CHANNELS 3 Xrotation Yrotation Zrotation\n" for i in range(depth))
    text = (f"HIERARCHY\nROOT Hips {{ OFFSET 0 0 0 CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation "
            f"Zrotation\n{joints}{'}' * (depth + 1)}\nMOTION\nFrames: 2\nFrame Time: 0.03\n")
    (tmp_path / "deep.bvh").write_text(text + ("0 " * (6 + 3 * depth) + "\n") * 2)
    with pytest.raises(MotionFormatError, match=r"deep\.bvh.*deep"):
        _bounded(parse_bvh, tmp_path / "deep.bvh", errors=())


# ---- coohoi clips (.npz) ---------------------------------------------------------------------------------------

_CLIP_KEYS = ["format", "fps", "root_pos", "root_quat", "dof_pos", "loop", "object_pos", "object_quat",
              "object_size", "contacts"]


def _clip_arrays() -> dict:
    clip = sinusoid_clip(CLIP_SECONDS, with_object=True)
    return {"format": np.array("coohoi-clip-1"), "fps": np.array(clip.fps), "loop": np.array(False),
            **{k: getattr(clip, k) for k in _CLIP_KEYS[2:] if k != "loop" and getattr(clip, k) is not None}}


@given(changes=st.lists(st.tuples(st.sampled_from(_CLIP_KEYS), st.none() | _arrays()), min_size=1, max_size=3))
def test_clips_with_missing_or_wrong_arrays_load_or_are_refused(changes):
    arrays = _clip_arrays()
    for key, value in changes:
        arrays.pop(key, None) if value is None else arrays.__setitem__(key, value)
    path = _tmp("clip.npz")
    np.savez(path, **arrays)
    clip = _bounded(MotionClip.load, path)
    assert clip is None or np.all(np.isfinite(clip.root_pos)) and clip.dof_pos.shape[1] == hum.NUM_DOFS


_VALID_CLIP = io.BytesIO()
np.savez_compressed(_VALID_CLIP, **_clip_arrays())


@given(cut=st.integers(0, len(_VALID_CLIP.getvalue())), at=st.integers(0, len(_VALID_CLIP.getvalue()) - 1),
       byte=st.integers(0, 255))
def test_truncated_or_damaged_clips_load_or_are_refused(cut, at, byte):
    data = bytearray(_VALID_CLIP.getvalue())
    data[at] = byte
    path = _tmp("cut.npz")
    path.write_bytes(bytes(data[:cut]))
    _bounded(MotionClip.load, path)


@pytest.mark.parametrize("shape", [(HUGE, 3), (10**9, 3), (2**62, 2**62)])
def test_clip_member_declaring_a_huge_array_is_refused_before_allocating(tmp_path, shape):
    path = tmp_path / "huge.npz"
    np.savez(path, **_clip_arrays())
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("root_pos.npy", _npy_header(shape))  # a second, later member of the same name wins
    with pytest.raises(MotionFormatError, match=r"huge\.npz.*root_pos"):
        _bounded(MotionClip.load, path, errors=())


@pytest.mark.parametrize("key, dtype", [("root_pos", np.complex128), ("fps", "U4"), ("dof_pos", "M8[s]")])
def test_clip_arrays_of_complex_text_or_dates_are_refused_naming_them(tmp_path, key, dtype):
    arrays = _clip_arrays()
    arrays[key] = arrays[key].astype(dtype) if dtype != "M8[s]" else arrays[key].astype(np.int64).astype(dtype)
    np.savez(tmp_path / "odd.npz", **arrays)
    with pytest.raises(MotionFormatError, match=rf"odd\.npz.*{key}.*real numbers"):
        MotionClip.load(tmp_path / "odd.npz")


def test_clip_with_pickled_objects_is_refused_without_running_them(tmp_path):
    _WritesMarker.marker.unlink(missing_ok=True)
    np.savez(tmp_path / "evil.npz", **_clip_arrays(), fps_note=np.array([_WritesMarker()], dtype=object))
    with pytest.raises(MotionFormatError, match=r"evil\.npz"):
        MotionClip.load(tmp_path / "evil.npz")
    assert not _WritesMarker.marker.exists()


# ---- config composition ----------------------------------------------------------------------------------------

_CONFIG_VALUES = (st.sampled_from(["null", "nan", "inf", "-inf", "-1", "0", "1e999", "[]", "[1,2]", "{}", "true",
                                   "${nope}", "${engine.num_envs}", "'", "\"", "[", "x=y", "carry_box", "td3", "ppo",
                                   "mujoco", "a,b", "${oc.env:HOME}", "\\", "%"])
                  | st.integers(-10**20, 10**20).map(str) | st.floats().map(str) | st.text(max_size=6))


@given(overrides=st.lists(st.tuples(st.sampled_from(["", "+", "++", "~"]), st.sampled_from(CONFIG_KEYS) |
                                    st.text(max_size=6), _CONFIG_VALUES), max_size=3))
def test_config_composition_fails_only_with_config_errors(overrides):
    from coohoi.cli import compose

    items = [f"{prefix}{key}={value}" for prefix, key, value in overrides]
    try:
        compose(items)
    except CONFIG_ERRORS as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message for {items}"


def test_empty_config_key_is_refused_with_a_config_error():
    from coohoi.cli import compose

    with pytest.raises(CONFIG_ERRORS):
        compose(["+=[]"])


# ---- slow mode ---------------------------------------------------------------------------------------------------

PROPERTIES = [test_truncated_or_damaged_checkpoints_load_exactly_or_are_refused,
              test_checkpoints_of_arbitrary_plain_content_load_or_are_refused,
              test_ase_files_with_missing_or_wrong_values_import_or_are_refused,
              test_truncated_or_damaged_ase_files_import_or_are_refused,
              test_bvh_files_with_replaced_inserted_or_dropped_tokens_import_or_are_refused,
              test_random_text_is_refused_as_bvh,
              test_clips_with_missing_or_wrong_arrays_load_or_are_refused,
              test_truncated_or_damaged_clips_load_or_are_refused,
              test_config_composition_fails_only_with_config_errors]


@pytest.mark.slow
@pytest.mark.parametrize("prop", PROPERTIES, ids=lambda p: p.__name__.removeprefix("test_"))
def test_every_property_holds_over_many_examples(prop):
    settings(max_examples=SLOW_EXAMPLES, deadline=None, derandomize=False,
             suppress_health_check=list(HealthCheck))(prop)()


TRAIN_RUNS = {  # the checkpoints the project writes: both learners and the team task, as small as they run
    "ppo": ["task=carry_box", "engine.num_envs=4"],
    "td3": ["train=td3", "task=amp_locomotion", "engine.num_envs=4", "train.td3.steps_per_epoch=4",
            "train.td3.learning_starts=2", "train.td3.batch_size=64"],
    "team": ["task=team_carry_long_box", "engine.num_envs=2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("run", sorted(TRAIN_RUNS))
def test_checkpoints_the_project_writes_load_resume_and_export(tmp_path, run):
    from coohoi.cli import main

    common = ["train.eval.every=0", "train.eval.baselines=false", *TRAIN_RUNS[run]]
    assert main(["train", "train.max_epochs=2", f"output_dir={tmp_path / 'a'}", *common]) == 0
    (path,) = (tmp_path / "a").glob("*/nn/last.pth")
    assert load_checkpoint(path)["epoch"] == 2
    assert main(["train", f"checkpoint={path}", "resume=true", "train.max_epochs=3", f"output_dir={tmp_path / 'b'}",
                 *common]) == 0
    (resumed,) = (tmp_path / "b").glob("*/nn/last.pth")
    assert load_checkpoint(resumed)["epoch"] == 3
    assert main(["export", f"checkpoint={path}", f"output_dir={tmp_path / 'c'}"]) == 0
