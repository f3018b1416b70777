"""Settings files: alias bombs, recursive aliases, duplicate keys and deep nesting are refused up
front with FILE:LINE, before anything is built."""

import time

import pytest

from privcam.base.schema import ConfigError, read_yaml


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_nested_aliases_that_expand_to_billions_of_values_are_refused_fast(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]  # 9^9 values
    path = write(tmp_path, "\n".join(levels) + "\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"run.yaml:\d+: aliases expand this run file to more than 100,000 values"):
        read_yaml(path, "run file")
    assert time.perf_counter() - start < 2.0


def test_a_few_aliases_are_still_fine(tmp_path):
    path = write(tmp_path, "base: &base {lr: 0.1, epochs: 2}\ntask:\n  <<: *base\n  epochs: 3\n")
    data, _ = read_yaml(path, "run file")
    assert data["task"] == {"lr": 0.1, "epochs": 3}


def test_an_alias_inside_itself_is_refused(tmp_path):
    path = write(tmp_path, "name: x\nloop: &loop\n  - *loop\n")
    with pytest.raises(ConfigError, match=r"run.yaml:2: this anchored value contains an alias to itself"):
        read_yaml(path, "run file")


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    path = write(tmp_path, "name: x\ntask:\n  name: train\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"run.yaml:5: duplicate key 'lr' \(first at line 4\)"):
        read_yaml(path, "run file")


def test_deep_nesting_is_a_clear_error(tmp_path):
    path = write(tmp_path, "name: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"nested too deeply|aliases expand"):
        read_yaml(path, "run file")
