"""Read PyTorch `.ckpt` / `.pt` files without executing anything stored in them.

A pickle names the functions it wants called while it is loaded. `torch.load` either trusts
them (`weights_only=False`: a checkpoint can run any command) or refuses the whole file at the
first unknown name (`weights_only=True`: a Lightning checkpoint whose hyper-parameters hold an
`omegaconf` or `argparse` object fails to load, and subclasses of `dict` cannot be filled in).
A converter needs neither: it needs the tensors. So this reader

- resolves only a short allowlist of names (tensor and parameter rebuilding, storage types,
  dtypes, `OrderedDict`, a few builtin containers) to functions of its own or to plain types;
- turns every other name into a subclass of `PickledObjectPlaceholder`, an inert object that
  records the arguments, state and items the pickle gives it and never calls any of them;
- reads tensor data lazily: tensors come back as `LazyTensor` records, and only the ones the
  converter asks for are read from the archive, so optimizer states are never loaded.
"""

import codecs
import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch

from .errors import require_file

# Storage classes as they appear in the pickle (`torch.FloatStorage`, ...) -> element dtype.
# A static table, so that the storage classes themselves are never touched.
_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}
_DTYPES = {name: value for name, value in vars(torch).items() if isinstance(value, torch.dtype)}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file is not a PyTorch zip checkpoint this reader can take apart safely."""


class PickledObjectPlaceholder:
    """An inert stand-in for a pickled object of a class that is not on the allowlist.

    Whatever the pickle would have passed to the real class (constructor arguments, state,
    dict items, list items) is stored here as data; nothing is ever called.
    """

    qualified_name = "?"

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls)
        instance.args, instance.kwargs, instance.state = args, kwargs, None
        instance.items, instance.elements = {}, []
        return instance

    def __init__(self, *args, **kwargs):
        pass  # `__new__` already recorded the arguments; accept any signature.

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.elements.append(value)

    def extend(self, values):
        self.elements.extend(values)

    def __repr__(self) -> str:
        return f"<placeholder for {self.qualified_name}>"


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


@dataclass(frozen=True)
class _StorageRef:
    archive: "_TorchZipArchive" = field(repr=False, compare=False)
    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True)
class LazyTensor:
    """A tensor whose bytes stay in the archive until `materialize()` is called."""

    storage: _StorageRef
    offset: int
    size: Tuple[int, ...]
    stride: Tuple[int, ...]

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.size)

    @property
    def dtype(self) -> torch.dtype:
        return self.storage.dtype

    def materialize(self) -> torch.Tensor:
        flat = self.storage.archive.read_storage(self.storage)
        tensor = flat.as_strided(self.size, self.stride, self.offset)  # bounds-checked against the storage
        # A view of the whole storage can own it; a smaller view is copied so the rest can be freed.
        whole = tensor.is_contiguous() and self.offset == 0 and tensor.numel() == flat.numel()
        return tensor if whole else tensor.clone()


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    if not isinstance(storage, _StorageRef):
        raise UnsafeCheckpointError(f"Tensor data refers to an unsupported storage {storage!r}.")
    return LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *unused):
    return data  # a Parameter is just its tensor for conversion purposes


def _encode_latin1(text, encoding="latin1"):
    # Protocol-2 pickles store `bytes` as `_codecs.encode(str, "latin1")`; allow exactly that.
    if encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"Refusing to decode bytes with encoding {encoding!r}.")
    return codecs.encode(text, "latin1")


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch", "Size"): torch.Size,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _encode_latin1,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose only ways to reach code, `find_class` and `persistent_load`, are closed."""

    def __init__(self, file, archive: "_TorchZipArchive"):
        super().__init__(file, encoding="utf-8")
        self._archive = archive
        self._placeholders: Dict[str, type] = {}
        self.foreign_globals = set()

    def find_class(self, module: str, name: str):
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is not None:
            return allowed
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        return self._placeholder(f"{module}.{name}")

    def _placeholder(self, qualified_name: str) -> type:
        self.foreign_globals.add(qualified_name)
        if qualified_name not in self._placeholders:
            short_name = qualified_name.rsplit(".", 1)[-1] or "Unknown"
            attributes = {"qualified_name": qualified_name, "__module__": __name__}
            self._placeholders[qualified_name] = type(short_name, (PickledObjectPlaceholder,), attributes)
        return self._placeholders[qualified_name]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"Unsupported persistent id {pid!r} in the checkpoint.")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"Unsupported storage type {storage_type!r} in the checkpoint.")
        return _StorageRef(self._archive, str(key), storage_type.dtype, int(numel))


class _TorchZipArchive:
    """The zip container `torch.save` writes: `<root>/data.pkl` plus one record per storage."""

    def __init__(self, path: str):
        require_file(path, "Checkpoint", "a PyTorch checkpoint (.ckpt / .pt) written by torch.save")
        if not zipfile.is_zipfile(path):
            raise UnsafeCheckpointError(
                f"{path} is not a PyTorch zip checkpoint (torch >= 1.6 format). Legacy (pre-1.6) files are "
                "not read; re-save them with `torch.save` in a trusted environment first."
            )
        self._zip = zipfile.ZipFile(path)
        pickles = [name for name in self._zip.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise UnsafeCheckpointError(f"{path} is a zip file but not a torch.save checkpoint (no data.pkl).")
        self._root = pickles[0][: -len("data.pkl")]
        byteorder = self._read_optional("byteorder")
        if byteorder not in (None, b"little"):
            raise UnsafeCheckpointError(f"{path} was saved on a {byteorder!r}-endian machine; not supported.")

    def _read_optional(self, name: str) -> Optional[bytes]:
        try:
            return self._zip.read(self._root + name)
        except KeyError:
            return None

    def load_pickle(self) -> Tuple[Any, set]:
        unpickler = _RestrictedUnpickler(io.BytesIO(self._zip.read(self._root + "data.pkl")), self)
        return unpickler.load(), unpickler.foreign_globals

    def read_storage(self, ref: _StorageRef) -> torch.Tensor:
        """The storage's elements as a flat tensor. Not cached: each weight is read once, then owned
        by the tensor made from it, so a converted model is never held twice in memory."""
        raw = bytearray(self._zip.read(f"{self._root}data/{ref.key}"))
        expected = ref.numel * torch.empty((), dtype=ref.dtype).element_size()
        if len(raw) < expected:
            raise UnsafeCheckpointError(f"Storage {ref.key} holds {len(raw)} bytes, expected {expected}.")
        if ref.numel == 0:
            return torch.empty(0, dtype=ref.dtype)
        return torch.frombuffer(raw, dtype=ref.dtype, count=ref.numel)


@dataclass
class SafeCheckpoint:
    """What `load_checkpoint_safely` returns.

    Attributes:
        content: the unpickled top-level object; tensors in it are `LazyTensor`s.
        foreign_globals: qualified names the pickle referenced that became placeholders.
    """

    content: Any
    foreign_globals: set


def load_checkpoint_safely(path: str) -> SafeCheckpoint:
    """Unpickle `path` without running code from it (see the module docstring)."""
    archive = _TorchZipArchive(str(path))
    content, foreign = archive.load_pickle()
    return SafeCheckpoint(content=content, foreign_globals=foreign)


def materialize_state_dict(state_dict: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """Read the tensors of a state dict of `LazyTensor`s; non-tensor entries are an error."""
    tensors = {}
    for key, value in state_dict.items():
        if not isinstance(value, LazyTensor):
            raise UnsafeCheckpointError(f"state_dict entry {key!r} is not a tensor but {value!r}.")
        tensors[key] = value.materialize()
    return tensors
