"""What the tools and the tour write stays out of git: the state folder, the demo's out folder, data
partitions, reports, fetched blobs and exported models (checked with ``git check-ignore``); the demo
keeps its state under its --out folder and its keystore password in a 0600 file there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRITTEN = [".fedchain/devnet.json", "out/demo/report.json", "out/demo/state/devnet.json", "data/client_0.npz",
           "audit.html", "blob.bin", "model.safetensors", "round3.pt", "model.blob", "consortium/schema.json",
           "site.npz"]
KEPT = ["fedchain/cli/round.py", "scripts/demo", "README.md", "tests/cli/test_quiet_devnet.py"]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_gitignore_covers_what_the_tools_write() -> None:
    done = subprocess.run(["git", "check-ignore", "--no-index", *WRITTEN, *KEPT], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    ignored = set(done.stdout.split())
    assert sorted(set(WRITTEN) - ignored) == []
    assert sorted(ignored & set(KEPT)) == []


def test_the_demo_keeps_its_state_and_password_under_its_out_folder() -> None:
    script = (ROOT / "scripts" / "demo").read_text(encoding="utf-8")
    assert 'state=${state:-$out/state}' in script and '--state-dir "$state"' in script
    assert 'password_file="$out/keystore-password"' in script and "umask 077" in script
    assert "export FEDCHAIN_PASSWORD" in script  # simulate encrypts the run's keystores with it
