"""Read named tensors from a CTranslate2 ``model.bin``.

The format (CTranslate2 ``specs/model_spec.py``): uint32 version, string spec name, uint32
revision, uint32 count, then per variable: string name, uint8 rank, uint32 dims, uint8 dtype id,
uint32 byte count, raw bytes; then aliases. Strings are uint16 length (NUL included) + UTF-8.
Reading it ourselves lets the SEC encoder reuse the Whisper weights already bundled for ASR.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


def read_ct2_variables(path: str | Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Return the variables whose names start with ``prefix`` as numpy arrays (original dtype)."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    with path.open("rb") as f:

        def read(fmt: str):
            size = struct.calcsize(fmt)
            data = f.read(size)
            if len(data) != size:
                raise CT2FormatError(f"{path}: truncated CTranslate2 model file")
            return struct.unpack(fmt, data)

        def read_string() -> str:
            (length,) = read("<H")
            return f.read(length)[:-1].decode("utf-8")

        (version,) = read("<I")
        if not 5 <= version <= 6:
            raise CT2FormatError(f"{path}: unsupported CTranslate2 binary version {version}")
        read_string()  # spec name
        read("<I")  # spec revision
        (count,) = read("<I")
        for _ in range(count):
            name = read_string()
            (rank,) = read("<B")
            dims = read(f"<{rank}I") if rank else ()
            (dtype_id,) = read("<B")
            (num_bytes,) = read("<I")
            if not name.startswith(prefix):
                f.seek(num_bytes, 1)
                continue
            if dtype_id not in _DTYPES:
                raise CT2FormatError(f"{path}: variable {name} has unsupported dtype id {dtype_id}")
            buf = f.read(num_bytes)
            out[name] = np.frombuffer(buf, dtype=_DTYPES[dtype_id]).reshape(dims).copy()
    if not out:
        raise CT2FormatError(f"{path}: no variables start with {prefix!r}")
    return out


def write_ct2_variables(path: str | Path, variables: dict[str, np.ndarray], spec: str = "emostream_subset",
                        revision: int = 1) -> None:
    """Write ``variables`` in the same format (version 6, no aliases): a subset of a model, such as
    the Whisper encoder alone, that ``read_ct2_variables`` reads back exactly."""
    codes = {np.dtype(t): k for k, t in _DTYPES.items()}

    def string(text: str) -> bytes:
        raw = text.encode("utf-8") + b"\0"
        return struct.pack("<H", len(raw)) + raw

    with Path(path).open("wb") as f:
        f.write(struct.pack("<I", 6) + string(spec) + struct.pack("<II", revision, len(variables)))
        for name, array in variables.items():
            array = np.asarray(array, order="C")  # (ascontiguousarray would turn a scalar into shape (1,))
            if array.dtype not in codes:
                raise CT2FormatError(f"variable {name}: dtype {array.dtype} has no CTranslate2 id")
            f.write(string(name) + struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape))
            f.write(struct.pack("<BI", codes[array.dtype], array.nbytes) + array.tobytes())
        f.write(struct.pack("<I", 0))  # aliases
