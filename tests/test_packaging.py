"""A plain `pip install .` ships what privcam needs: every package folder, the run files, presets,
sample video and weights; and the README's commands then work from a folder outside the repository."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NOT_SOURCE = {".git", "runs", "data", "build", "dist", ".whl", ".gl", ".hypothesis", ".pytest_cache", ".ruff_cache"}


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"privcam"}
    for top in ("base", "privacy", "nets", "augment", "sensor", "pipelines", "configs"):
        for init in (REPO / top).rglob("__init__.py"):
            found.add(".".join(["privcam", *init.parent.relative_to(REPO).parts]))
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"


def readme_commands() -> list[str]:
    """The shell commands of the README's bash blocks, one per `&&` part, comments removed."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


# Runs of seconds whose output later README commands read (the shards training reads): run as written.
QUICK_RUNS = ("simulate_fashion_mnist",)


def as_quick_check(command: str) -> list[str] | None:
    """The README command as run here: a run is validated (its work is minutes, tested elsewhere)
    unless it is one of QUICK_RUNS, torchrun becomes one process, the webcam stops after two frames
    and make-shapes makes a few scenes; `make` targets need the repository and are what CI itself runs."""
    args = shlex.split(command)
    if args[0] == "make":
        return None
    if args[0] == "torchrun":
        args = ["python", *args[args.index("-m") :]]
    if args[:3] in (["privcam", "run", name] for name in QUICK_RUNS):
        return args
    if "run" in args and args[0] in ("privcam", "python"):
        args[args.index("run")] = "validate"
    if args[:2] == ["privcam", "webcam"]:
        args += ["--headless", "--frames", "2"]
    if args[:2] == ["privcam", "make-shapes"]:
        args += ["--train", "8", "--test", "4"]
    assert args[0] in ("privcam", "python"), f"README command {command!r}: add how to check it here"
    return args


def test_an_installed_wheel_runs_the_readme_commands_from_another_folder(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=lambda folder, names: [
            n
            for n in names
            if (Path(folder) == REPO and n in NOT_SOURCE) or n == "__pycache__" or n.endswith(".egg-info")
        ],
    )
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", wheels], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv], check=True)
    subprocess.run([venv / "bin" / "python", *pip[1:], "install", "--no-deps", *wheels.glob("*.whl")], check=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DISPLAY", None)

    def sh(args: list[str]) -> str:
        result = subprocess.run(args, cwd=outside, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{shlex.join(args)}:\n{result.stderr[-2000:]}"
        return result.stdout

    installed = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "privcam"
    assert f"in {installed / 'configs'}" in sh(["privcam", "info"])  # the wheel's copy, not the repository's
    checked = [args for command in readme_commands() if (args := as_quick_check(command)) is not None]
    assert any("validate" in args for args in checked) and any("webcam" in args for args in checked)
    for args in checked:
        sh(args)
    assert (outside / "runs" / "keys" / "camera.key").stat().st_mode & 0o777 == 0o600
    assert (outside / "runs" / "webcam" / "demo.mp4").exists()  # outputs go to the working folder
    assert not list(installed.rglob("runs"))  # and never into the installed package
