"""The README's Python snippets run as written, in order, as one script (later ones use what earlier
ones made, as a reader's session would)."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippets_run_verbatim(tmp_path):
    snippets = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(snippets) >= 3
    script = tmp_path / "readme_snippets.py"
    script.write_text("\n".join(snippets))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "vgg.keyed.pt").exists() and (tmp_path / "f.npz").exists()
    assert "quad readout, masked mode, nonce" in result.stdout
