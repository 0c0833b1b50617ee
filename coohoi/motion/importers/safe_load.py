"""Reading pickled numpy files without running pickled code.

`np.load(allow_pickle=True)` will call any importable function a file names. The restricted unpickler here resolves
only numpy arrays, dtypes and scalars, and OrderedDict; builtin containers (dict, list, tuple, str, numbers) need no
lookup. Anything else is refused before it is called.
"""

from __future__ import annotations

import io
import math
import pickle
import tokenize
from pathlib import Path

import numpy as np

from coohoi.motion.clip import MotionFormatError

# (module, name) pairs a plain-array pickle needs; numpy 2 writes numpy._core, numpy 1 wrote numpy.core.
ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes (array data)
})


class UnsafePickleError(MotionFormatError):
    """A pickle that asks for something other than plain arrays and containers."""


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self.source}: refused to load: the pickle asks for {module}.{name}, but only numpy arrays, "
                "dtypes, scalars and plain containers are allowed")
        return super().find_class(module, name)


def restricted_loads(data: bytes, source: str = "data"):
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # any malformed pickle: truncated, bad opcode, bad array state
        raise MotionFormatError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


def read_npy_header(stream, source: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy stream, leaving it at the array data."""
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except (ValueError, SyntaxError, EOFError, TypeError, tokenize.TokenError) as exc:  # a damaged header
        raise MotionFormatError(f"{source}: not a .npy file ({' '.join(str(exc).split())[:200]})") from exc
    return shape, dtype


def check_declared_size(shape: tuple[int, ...], dtype: np.dtype, available: int, source: str) -> None:
    """Refuse an array whose header declares more bytes than the file holds, before anything allocates them (numpy
    allocates the declared size, then reads)."""
    declared = math.prod(shape) * dtype.itemsize
    if declared > available:
        raise MotionFormatError(f"{source}: declares an array of shape {shape} ({declared} bytes) but holds "
                                f"{available} bytes of data")


def load_npy(path: str | Path):
    """The content of a `.npy` file: a plain array, or for object arrays the restricted-unpickled object
    (`.item()` of a 0-d object array, as `np.save(dict)` writes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MotionFormatError(f"{path}: cannot read ({exc})") from exc
    stream = io.BytesIO(raw)
    shape, dtype = read_npy_header(stream, str(path))
    if not dtype.hasobject:
        check_declared_size(shape, dtype, len(raw) - stream.tell(), str(path))
        try:
            return np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise MotionFormatError(f"{path}: truncated or malformed .npy ({exc})") from exc
    value = restricted_loads(raw[stream.tell():], str(path))
    if isinstance(value, np.ndarray) and value.dtype.hasobject and value.shape == ():
        return value.item()
    return value
