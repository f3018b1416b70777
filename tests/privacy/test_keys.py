import hashlib
import os
import pickle
import stat

import pytest

from privcam.privacy import Key, KeyFileError


def test_generate_gives_distinct_32_byte_keys():
    a, b = Key.generate(), Key.generate()
    assert len(a.secret) == 32
    assert a != b


def test_hex_round_trip_and_bad_hex(key):
    assert Key.from_hex(key.secret.hex()) == key
    with pytest.raises(ValueError, match="64 hex characters"):
        Key.from_hex("abcd")
    with pytest.raises(ValueError, match="0-9a-f"):
        Key.from_hex("zz" * 32)
    with pytest.raises(ValueError, match="exactly 32 bytes"):
        Key(b"short")


def test_fingerprint_follows_design(key):
    expected = hashlib.blake2b(bytes(range(32)), digest_size=8, person=b"privcam-fp").hexdigest()
    assert key.fingerprint == expected == "8728bfe76167f4ee"


def test_text_forms_never_show_the_key(key):
    secret_hex = key.secret.hex()
    for text in (repr(key), str(key), f"{key}"):
        assert secret_hex not in text
        assert key.fingerprint in text
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_save_is_0600_and_loads_back(tmp_path, key):
    path = key.save(tmp_path / "camera.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key.secret.hex() + "\n"
    assert Key.load(path) == key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera.key"]


def test_load_refuses_group_or_world_readable(tmp_path, key):
    path = key.save(tmp_path / "camera.key")
    for mode in (0o640, 0o604, 0o644):
        os.chmod(path, mode)
        with pytest.raises(KeyFileError, match="chmod 600") as info:
            Key.load(path)
        assert key.secret.hex() not in str(info.value)


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        Key.load(tmp_path / "missing.key")
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileError, match="not a privcam key"):
        Key.load(bad)


def test_load_refuses_folders_and_fifos_without_blocking(tmp_path):
    (tmp_path / "folder.key").mkdir()
    with pytest.raises(KeyFileError, match="is a folder, not a key file"):
        Key.load(tmp_path / "folder.key")
    os.mkfifo(tmp_path / "pipe.key", 0o600)
    with pytest.raises(KeyFileError, match="is a FIFO, not a key file"):
        Key.load(tmp_path / "pipe.key")  # reading it would block until a writer came


def test_save_never_replaces_a_key_by_accident(tmp_path, key):
    path = key.save(tmp_path / "camera.key")
    other = Key.generate()
    with pytest.raises(KeyFileError, match="exists; replacing it makes its frames unreadable"):
        other.save(path)
    assert Key.load(path) == key
    other.save(path, overwrite=True)
    assert Key.load(path) == other
    (tmp_path / "folder").mkdir()
    with pytest.raises(KeyFileError, match="is a folder; a key file goes there"):
        key.save(tmp_path / "folder", overwrite=True)


def test_save_makes_private_folders_whatever_the_umask(tmp_path, key):
    old = os.umask(0)
    try:
        path = key.save(tmp_path / "a" / "b" / "camera.key")
    finally:
        os.umask(old)
    for folder in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
