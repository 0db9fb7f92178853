"""An installed wheel works on its own: built from this checkout, installed into a scratch venv and
run from outside the repository with only the ``toolchain`` setting pointing at ``hardhat-local/``,
it starts a devnet, deploys the Federation from its packaged artifact, and audits it clean.

The wheel is built offline (``pip wheel --no-build-isolation --no-index``) from a copy of the
package, so the build leaves nothing in the checkout. The scratch venv has no pip and no project
on its path: its only link to this environment is a ``.pth`` line naming this interpreter's
site-packages, for the third-party dependencies (a line of a ``.pth`` file is only added to
``sys.path``; the ``.pth`` files in that directory, the editable install among them, never run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from fedchain.errors import ExitCode
from fedchain.services.devnet import stop_devnet

pytestmark = [pytest.mark.slow, pytest.mark.devnet]

REPO = Path(__file__).resolve().parents[1]
TOOLCHAIN = REPO / "hardhat-local"
MINIMAL_PATH = "/usr/bin:/bin"  # the console script names its interpreter; anvil comes from the toolchain


def _run(cmd: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _checked(cmd: list[str | Path], *, cwd: Path) -> None:
    proc = _run(cmd, cwd=cwd)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch venv with the freshly built fedchain wheel installed, and nothing else of the checkout."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "fedchain", src / "fedchain", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _checked([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", root / "dist", src], cwd=root)
    (wheel,) = (root / "dist").glob("fedchain-*.whl")

    env_dir = root / "venv"
    _checked([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=root)
    python = env_dir / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=root).stdout.strip()
    deps = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    (Path(site) / "fedchain-test-deps.pth").write_text("\n".join(deps) + "\n", encoding="utf-8")
    _checked([*pip, "--python", python, "install", "--no-deps", "--no-index", wheel], cwd=root)
    return env_dir


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory outside the repository."""
    assert not tmp_path.resolve().is_relative_to(REPO)
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    """This environment without any fedchain setting or Python path, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, "PATH": MINIMAL_PATH, **extra}


def _fedchain(venv: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([venv / "bin" / "fedchain", *args], cwd=cwd, env=env)


def _json(venv: Path, *args: str, cwd: Path, env: dict[str, str]) -> Any:
    proc = _fedchain(venv, *args, "--json", cwd=cwd, env=env)
    assert proc.returncode == 0, f"fedchain {' '.join(args)}: {proc.stderr}"
    return json.loads(proc.stdout)


def test_installed_code_comes_from_the_wheel(venv: Path, workdir: Path) -> None:
    probe = (
        "import json, fedchain, fedchain.chain.compiler as c, fedchain.services.base as b;"
        "print(json.dumps([fedchain.__file__, str(c.checkout_root()), str(b.checkout_toolchain()),"
        " c.load_artifact('Federation')['contractName']]))"
    )
    proc = _run([venv / "bin" / "python", "-c", probe], cwd=workdir, env=_env())
    assert proc.returncode == 0, proc.stderr
    module, checkout, toolchain, contract = json.loads(proc.stdout)
    assert Path(module).resolve().is_relative_to(venv.resolve())
    assert not Path(module).resolve().is_relative_to(REPO)
    assert (checkout, toolchain, contract) == ("None", "None", "Federation")
    assert (venv / "bin" / "fedchain").read_text().splitlines()[0] == f"#!{venv / 'bin' / 'python'}"


def test_contracts_check_says_there_are_no_sources(venv: Path, workdir: Path) -> None:
    proc = _fedchain(venv, "contracts", "build", "--check", cwd=workdir, env=_env())
    assert proc.returncode == ExitCode.CONFIG
    assert proc.stderr.startswith("error: no contract sources to check or compile")


def test_devnet_without_toolchain_names_the_setting(venv: Path, workdir: Path) -> None:
    if shutil.which("anvil", path=MINIMAL_PATH):
        pytest.skip(f"anvil is on {MINIMAL_PATH}: the devnet needs no toolchain")
    proc = _fedchain(venv, "devnet", "start", "--state-dir", "sd", cwd=workdir, env=_env())
    assert proc.returncode == ExitCode.CONFIG
    assert "FEDCHAIN_TOOLCHAIN" in proc.stderr and "toolchain" in proc.stderr
    assert not (workdir / "sd" / "devnet.json").exists()


def test_devnet_deploy_audit_from_the_wheel(venv: Path, workdir: Path) -> None:
    env = _env(FEDCHAIN_TOOLCHAIN=str(TOOLCHAIN))
    state = workdir / "sd"
    sd = ["--state-dir", str(state)]
    try:
        started = _json(venv, "devnet", "start", *sd, cwd=workdir, env=env)
        assert started["reused"] is False and started["chain_id"] == 31337
        deployer = Account.create()
        _json(venv, "account", "fund", deployer.address, "--amount", "5", *sd, cwd=workdir, env=env)
        deployed = _json(venv, "devnet", "deploy", *sd, cwd=workdir, env={**env, "FEDCHAIN_PRIVATE_KEY": deployer.key.hex()})
        assert deployed["deployment"]["admin"] == deployer.address

        report = _json(venv, "audit", *sd, "--store", "local", cwd=workdir, env=env)
        assert report["ok"] is True and report["rounds_checked"] == []
        # a deployment without governance: its admin is an EOA, reported as such (a warning)
        assert [(f["kind"], f["severity"]) for f in report["findings"]] == [("role_held_by_eoa", "warning")]
        assert report["contract"] == deployed["deployment"]["address"]

        stopped = _json(venv, "devnet", "stop", *sd, cwd=workdir, env=env)
        assert stopped["stopped"] is True and stopped["pid"] == started["pid"]
    finally:
        stop_devnet(state)


def test_a_whole_federation_runs_and_audits_from_the_wheel(venv: Path, workdir: Path) -> None:
    """Rounds with real updates: participant processes (``python -m fedchain``) from the wheel,
    the round engine over the ledger, the blobs in the local store, then a clean audit - twice:
    by the simulation, and again by a separate ``fedchain audit`` of the recorded deployment."""
    env = _env(FEDCHAIN_TOOLCHAIN=str(TOOLCHAIN))
    state = workdir / "sd"
    sd = ["--state-dir", str(state)]
    try:
        started = _json(venv, "devnet", "start", *sd, cwd=workdir, env=env)
        report = _json(venv, "simulate", "--clients", "2", "--rounds", "2", "--store", "local", *sd,
                       "--rpc-url", started["url"], "--out", str(workdir / "out"), cwd=workdir, env=env)
        assert report["audit"]["ok"] is True and report["audit"]["rounds_checked"] == [1, 2]
        assert [len(r["included"]) for r in report["rounds"]] == [2, 2]
        assert [p["exit_code"] for p in report["participants"]] == [0, 0]

        audit = _json(venv, "audit", *sd, "--store", "local", "--rpc-url", started["url"],
                      "--address", report["contract"], cwd=workdir, env=env)
        assert audit["ok"] is True and audit["rounds_checked"] == [1, 2]
    finally:
        stop_devnet(state)
