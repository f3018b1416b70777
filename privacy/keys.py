"""Secret keys: generation, fingerprints and key files (64 hex chars, mode 0600)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from ..base.atomic import atomic_write

KEY_BYTES = 32


class KeyFileError(ValueError):
    """A key file is missing, malformed or readable by others."""


class KeyMismatchError(ValueError):
    """Frames, a network or a checkpoint made with one key met another key."""


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return "regular file" if stat.S_ISREG(mode) else "special file"


def _make_private_folders(folder: Path) -> None:
    """Create `folder` and its missing parents with mode 0700 (mkdir's mode is masked by the umask)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir()
        made.chmod(0o700)


def check_fingerprint(key: Key, fingerprint: str, what: str) -> None:
    """Raise KeyMismatchError unless `key` has `fingerprint`; `what` names the thing made with it."""
    if key.fingerprint != fingerprint:
        raise KeyMismatchError(f"{what} made with the key of fingerprint {fingerprint}, not {key.fingerprint}")


class Key:
    """A 32-byte secret. Only its fingerprint ever leaves this object as text.

    Example:
        >>> key = Key.generate()
        >>> key.save("camera.key")  # doctest: +SKIP
        >>> Key.load("camera.key") == key  # mode 0600 only  # doctest: +SKIP
        True
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) != KEY_BYTES:
            raise ValueError(f"a key is exactly {KEY_BYTES} bytes, got {_describe(secret)}")
        self._secret = bytes(secret)

    @classmethod
    def generate(cls) -> Key:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_hex(cls, text: str) -> Key:
        text = text.strip()
        if len(text) != 2 * KEY_BYTES:
            raise ValueError(f"a key in hex is {2 * KEY_BYTES} hex characters, got {len(text)} characters")
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise ValueError(
                f"a key in hex is {2 * KEY_BYTES} characters from 0-9a-f; found another character"
            ) from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Key:
        """Read a key file, refusing one that group or others may read (as ssh does), and anything
        that is not a regular file (a folder, or a FIFO that would block the read)."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise KeyFileError(f"key file {path} does not exist (create one with Key.generate().save(path))") from None
        except OSError as err:
            raise KeyFileError(f"key file {path} cannot be read: {err.strerror}") from None
        if not stat.S_ISREG(mode):
            raise KeyFileError(f"key file {path} is a {_file_kind(mode)}, not a key file")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"key file {path} has permissions {stat.filemode(mode)}: it must be readable by its owner only "
                f"(chmod 600 {path})"
            )
        try:
            return cls.from_hex(path.read_text(encoding="ascii"))
        except (ValueError, UnicodeDecodeError) as err:
            raise KeyFileError(f"key file {path} is not a privcam key: {err}") from None
        except OSError as err:
            raise KeyFileError(f"key file {path} cannot be read: {err.strerror}") from None

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the key as hex with mode 0600, atomically (temporary name, then rename). An existing
        key is replaced only with overwrite=True: a lost key makes its frames unreadable for good.
        Missing parent folders are made with mode 0700, whatever the umask."""
        path = Path(path)
        if path.exists() or path.is_symlink():
            if not path.is_file():
                raise KeyFileError(f"{path} is a {_file_kind(path.lstat().st_mode)}; a key file goes there")
            if not overwrite:
                raise KeyFileError(f"key file {path} exists; replacing it makes its frames unreadable (overwrite=True)")
        _make_private_folders(path.parent)
        with atomic_write(path, "w", permissions=0o600) as f:
            f.write(self._secret.hex() + "\n")
        return path

    @property
    def secret(self) -> bytes:
        """The raw key bytes: for the key schedule only, never for logs or metadata."""
        return self._secret

    @property
    def fingerprint(self) -> str:
        return hashlib.blake2b(self._secret, digest_size=8, person=b"privcam-fp").hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Key(fingerprint={self.fingerprint})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a Key is not pickled: save it with key.save(path), mode 0600")

    def __deepcopy__(self, memo: dict) -> Key:
        return self  # immutable: copies of objects that hold a key share it


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    return type(value).__name__
