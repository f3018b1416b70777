import json
import stat

import cv2
import pytest

from privcam.pipelines.tasks.demo import main


def test_demo_writes_picture_metrics_and_a_private_key(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--size", "64"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["reveal_exact"] is True
    assert metrics["classifier"]["max_abs_logit_diff"] <= 1e-4
    assert metrics["classifier"]["top5_identical"] is True
    assert metrics["segmenter"]["max_abs_diff_revealed"] <= 1e-4
    assert metrics["augmentation"]["max_abs_diff_revealed"] <= 1e-5
    assert metrics["psnr_protected_db"] < 15
    picture = cv2.imread(str(tmp_path / "demo.png"))
    assert picture is not None and picture.shape[0] > 3 * 64
    key_file = tmp_path / "demo.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    assert metrics["key_fingerprint"] in printed
    assert key_file.read_text().strip() not in printed + json.dumps(metrics)


def test_demo_rejects_bad_input(tmp_path):
    with pytest.raises(SystemExit, match="cannot read an image"):
        main(["--out", str(tmp_path), "--image", str(tmp_path / "missing.png"), "--size", "64"])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--size", "50"])
