"""One versioned file format: round trips, other kinds and versions, corrupt files, and files that would
run code when loaded."""

import pickle
import zipfile

import numpy as np
import pytest
import torch

from privcam.base.store import FileFormat, FileFormatError, read_header

WEIGHTS = FileFormat("weights", 1)
FRAMES = FileFormat("frame", 2, container="npz")


def test_torch_and_npz_files_round_trip(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "meta": {"accuracy": 0.9, "tags": ["a", None]}}
    path = WEIGHTS.save(tmp_path / "w.pt", state)
    loaded = WEIGHTS.load(path)
    assert torch.equal(loaded["w"], state["w"]) and loaded["meta"] == state["meta"]
    data = np.arange(12, dtype=np.uint16).reshape(3, 4)
    FRAMES.save(tmp_path / "f.npz", {"data": data, "metadata": {"shape": [3, 4]}})
    loaded = FRAMES.load(tmp_path / "f.npz")
    assert np.array_equal(loaded["data"], data) and loaded["metadata"] == {"shape": [3, 4]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npz", "w.pt"]  # no temporary files left


def test_other_kinds_versions_and_corrupt_files_are_clear_errors(tmp_path):
    path = WEIGHTS.save(tmp_path / "w.pt", {"x": 1})
    with pytest.raises(FileFormatError, match=r"w\.pt is a privcam-weights/1 file, written by another privcam version"):
        FileFormat("weights", 2).load(path)
    with pytest.raises(
        FileFormatError, match=r"w\.pt is not a privcam-checkpoint/1 file \(found 'privcam-weights/1'\)"
    ):
        FileFormat("checkpoint", 1).load(path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:40])
    with pytest.raises(FileFormatError, match=r"truncated\.pt is not a readable privcam-weights/1 file"):
        WEIGHTS.load(truncated)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt does not exist"):
        WEIGHTS.load(tmp_path / "missing.pt")
    with pytest.raises(FileFormatError, match="is not a file"):
        WEIGHTS.load(tmp_path)
    np.savez(tmp_path / "plain.npz", data=np.zeros(3))
    with pytest.raises(FileFormatError, match=r"plain\.npz is not a readable privcam-frame/2 file"):
        FRAMES.load(tmp_path / "plain.npz")
    for header in ('["a list"]', '{"format": "privcam-frame/2", "metadata": 5}'):
        np.savez(tmp_path / "odd.npz", header=np.array(header), data=np.zeros(3))
        with pytest.raises(FileFormatError, match=r"odd\.npz.*(JSON object with a metadata object)"):
            FRAMES.load(tmp_path / "odd.npz")


class _RunsCode:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('pwned').write_text('x')",))


def test_a_crafted_file_runs_no_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": "privcam-weights/1", "payload": _RunsCode()}, tmp_path / "evil.pt")
    with pytest.raises(FileFormatError, match="not a readable privcam-weights/1 file"):
        WEIGHTS.load(tmp_path / "evil.pt")
    np.savez(tmp_path / "evil.npz", header=np.array([_RunsCode()], dtype=object))  # a pickled object array
    with pytest.raises(FileFormatError, match="allow_pickle=False"):
        FRAMES.load(tmp_path / "evil.npz")
    assert not (tmp_path / "pwned").exists()


def test_header_reads_a_torch_files_plain_fields_without_running_its_code(tmp_path):
    kind = FileFormat("weights", 1)
    kind.save(tmp_path / "w.pt", {"arch": "small_cnn", "num_classes": 10, "state_dict": {"w": torch.ones(3)}})
    header = read_header(tmp_path / "w.pt")
    assert header["format"] == kind.tag and header["arch"] == "small_cnn" and header["num_classes"] == 10
    assert header["state_dict"]["w"] is not None  # a tensor is left out, as an opaque stand-in

    class Exploit:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"format": kind.tag, "x": Exploit()}))
    read_header(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(FileFormatError, match="not a readable privcam file"):
        read_header(tmp_path / "missing.pt")
