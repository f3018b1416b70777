"""One versioned file format for everything privcam saves: frames, weights, keyed models, training
checkpoints and capture caches.

Every file carries a header tag "privcam-NAME/VERSION". Loading never runs code from the file:
torch files are read with `weights_only=True` (tensors, numbers, strings, lists, dicts only) and
.npz files with `allow_pickle=False`. A file of another kind or version is a clear FileFormatError.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .atomic import atomic_write

# A privcam torch file keeps its tensors apart from its pickled header, which stays small.
HEADER_LIMIT_BYTES = 16 * 2**20


class FileFormatError(ValueError):
    """A file that is unreadable, corrupt, or not of the expected privcam kind and version."""


@dataclass(frozen=True)
class FileFormat:
    """A kind of privcam file.

    Args:
        name: the kind, e.g. "weights".
        version: bumped whenever the payload changes meaning.
        container: "torch" (torch.save of a dict: state dicts, optimiser states) or "npz" (NumPy
            arrays and a JSON metadata dict, readable without torch: frames).

    Example:
        >>> WEIGHTS = FileFormat("weights", 1)
        >>> WEIGHTS.save("w.pt", {"state_dict": model.state_dict()})  # doctest: +SKIP
        >>> WEIGHTS.load("w.pt")["state_dict"]  # doctest: +SKIP
    """

    name: str
    version: int
    container: Literal["torch", "npz"] = "torch"

    @property
    def tag(self) -> str:
        return f"privcam-{self.name}/{self.version}"

    def save(self, path: str | os.PathLike, payload: dict[str, Any]) -> Path:
        """Write `payload` atomically. For "npz", payload holds arrays and a JSON-safe "metadata" dict."""
        path = Path(path)
        buffer = io.BytesIO()
        if self.container == "torch":
            import torch

            torch.save({"format": self.tag, **payload}, buffer)
        else:
            import numpy as np

            arrays = {k: v for k, v in payload.items() if k != "metadata"}
            header = json.dumps({"format": self.tag, "metadata": payload.get("metadata", {})})
            np.savez(buffer, header=np.array(header), **arrays)
        with atomic_write(path) as f:
            f.write(buffer.getvalue())
        return path

    def load(self, path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
        """The payload of a file of this kind and version (without its "format" tag).

        Raises FileNotFoundError for a missing file and FileFormatError for anything else wrong.
        """
        path = Path(path)
        if not path.is_file():
            if path.exists():
                raise FileFormatError(f"{path} is not a file (expected a {self.tag} file)")
            raise FileNotFoundError(f"{path} does not exist (expected a {self.tag} file)")
        try:
            payload = self._read(path, map_location)
        except FileFormatError:
            raise
        except Exception as err:
            raise FileFormatError(f"{path} is not a readable {self.tag} file: {_first_line(err)}") from None
        found = payload.pop("format", None) if isinstance(payload, dict) else None
        if found != self.tag:
            kind, _, _version = str(found).partition("/")
            if kind == f"privcam-{self.name}":
                raise FileFormatError(
                    f"{path} is a {found} file, written by another privcam version; this one reads {self.tag}"
                )
            raise FileFormatError(f"{path} is not a {self.tag} file (found {found!r})")
        return payload

    def holds(self, path: str | os.PathLike) -> bool:
        """Whether `path` is a readable file of this kind and version (for files that may be of
        one kind or another, such as plain or keyed weights)."""
        try:
            self.load(path)
        except (FileNotFoundError, FileFormatError):
            return False
        return True

    def _read(self, path: Path, map_location: Any) -> Any:
        if self.container == "torch":
            import torch

            return torch.load(path, map_location=map_location, weights_only=True)
        import numpy as np

        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(str(arrays.pop("header")))
        if not isinstance(header, dict) or not isinstance(header.get("metadata"), dict):
            raise FileFormatError(f"{path}: the header is not a JSON object with a metadata object")
        return {"format": header.get("format"), "metadata": header["metadata"], **arrays}


def set_aside(path: str | os.PathLike) -> Path:
    """Move a file that cannot be read to PATH.corrupt (replacing an older one), so that the run can
    start that file afresh and the bad one is still there to look at. Returns the new path."""
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    os.replace(path, target)
    return target


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The payload of a privcam "torch" file with every tensor left out, read without torch, for
    checks that must stay quick (`privcam validate`). The pickle is read with an unpickler that
    resolves no class from the file: nothing in it can run.

    Raises FileFormatError for a file that is not a readable torch file holding a dict.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            entry = next(i for i in archive.infolist() if i.filename.endswith("/data.pkl"))
            if entry.file_size > HEADER_LIMIT_BYTES:
                raise ValueError(f"its header unpacks to {entry.file_size} bytes (at most {HEADER_LIMIT_BYTES})")
            payload = _Skeleton(io.BytesIO(archive.read(entry))).load()
    except Exception as err:
        raise FileFormatError(f"{path} is not a readable privcam file: {_first_line(err)}") from None
    if not isinstance(payload, dict):
        raise FileFormatError(f"{path} is not a privcam file (it holds no header)")
    return payload


class _Opaque:
    """Stands for any object a pickle names (a tensor, a dtype): it takes every argument and state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _Skeleton(pickle.Unpickler):
    """Reads the plain structure of a torch pickle: dicts, lists, strings and numbers; every class
    it names (tensors, storages) becomes an _Opaque, and no code from the file runs."""

    def find_class(self, module: str, name: str) -> Any:
        return collections.OrderedDict if (module, name) == ("collections", "OrderedDict") else _Opaque

    def persistent_load(self, pid: Any) -> None:
        return None
