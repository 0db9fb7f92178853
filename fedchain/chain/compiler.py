"""Offline compilation of the Solidity contracts into committed, verifiable artifacts.

All project sources under ``contracts/`` (not ``contracts/test/``) and every file they import,
OpenZeppelin included, are compiled in ONE standard-JSON call to the pinned solc-js behind
``hardhat-local/solc-lookalike.js`` (no download). Each contract becomes
``fedchain/chain/artifacts/<Name>.json`` - package data, so an installed fedchain carries them and
reads them with :mod:`importlib.resources` - holding its ABI and bytecode together with the compiler
version, the settings and ``sourceHash``: SHA-256 over the sorted (source unit name, content) pairs
of every compiled source. The source hash doubles as the cache key: artifacts whose hash, compiler
and settings match the current sources are fresh and nothing is recompiled.

The sources are only there in a checkout (:func:`checkout_root`); an installed wheel has the
artifacts but nothing to compile or check them against.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import re
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from fedchain.chain import revertgen
from fedchain.errors import (
    ArtifactNotFoundError,
    CompilerError,
    NoSourcesError,
    RevertGenerationError,
    StaleArtifactError,
)
from fedchain.services.base import toolchain_dir

log = logging.getLogger(__name__)

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
"""Where :func:`build` writes the artifacts: the package data directory ``fedchain/chain/artifacts``."""
_ARTIFACTS_PACKAGE = "fedchain.chain"

SOLC_VERSION = "0.8.37"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 500
ARTIFACT_FORMAT = "fedchain-artifact-1"

CONTRACTS_DIR = "contracts"
_EXCLUDED_DIRS = frozenset({"test", "artifacts", "out", "cache", "lib"})
_PACKAGE_PREFIXES = ("@openzeppelin/", "forge-std/")

_IMPORT_RE = re.compile(r"""\bimport\s+(?:[^;"']*?\bfrom\s+)?["']([^"']+)["']""")
_DECLARATION_RE = re.compile(r"^\s*(?:abstract\s+)?(?:contract|library|interface)\s+([A-Za-z_]\w*)", re.MULTILINE)
_COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_ARTIFACT_NAME_RE = re.compile(r"^[A-Za-z_]\w*$")


def checkout_root() -> Path | None:
    """The repository root when fedchain runs from a checkout (``contracts/`` next to the
    ``fedchain`` package, as in an editable install); None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / CONTRACTS_DIR).is_dir() and (root / "pyproject.toml").is_file() else None


def _source_root(root: Path | None) -> Path:
    if root is not None:
        return root.resolve()
    found = checkout_root()
    if found is None:
        raise NoSourcesError(
            f"no contract sources to check or compile: this fedchain is installed without its contracts/ "
            f"directory; the packaged artifacts in {ARTIFACTS_DIR} are used as shipped "
            f"(run 'fedchain contracts build' from a checkout)"
        )
    return found


@dataclass(frozen=True)
class Toolchain:
    """Where the compiler and the Solidity packages live."""

    solc: Path
    node_modules: Path

    @classmethod
    def default(cls, directory: Path | None = None) -> Toolchain:
        """The pinned toolchain in ``directory`` (default: the configured one, see
        :func:`fedchain.services.base.toolchain_dir`)."""
        root = toolchain_dir(override=directory)
        return cls(solc=root / "solc-lookalike.js", node_modules=root / "node_modules")


@dataclass(frozen=True)
class ArtifactState:
    """One artifact and what the build found or did."""

    name: str
    path: Path
    state: str  # "fresh", "written", "stale", "missing", "orphan", "removed"
    reason: str = ""


@dataclass(frozen=True)
class BuildResult:
    """Outcome of :func:`build`."""

    source_hash: str
    compiler: str  # full (long) version
    compiled: bool  # whether solc ran
    checked: bool  # --check mode: nothing written
    artifacts: tuple[ArtifactState, ...]
    sources: tuple[str, ...]  # every compiled source unit, sorted
    elapsed_s: float


@dataclass(frozen=True)
class SourceSet:
    """The project sources and the closure of their imports."""

    root: Path
    project: tuple[str, ...]  # source unit names of the project files (contracts/...)
    contents: dict[str, str]  # every source unit name -> content

    @property
    def source_hash(self) -> str:
        """The :func:`source_hash` of these sources."""
        return source_hash(self.contents)

    def declared_contracts(self) -> dict[str, str]:
        """Contract, library and interface names declared in the project files -> source unit name."""
        names: dict[str, str] = {}
        for unit in self.project:
            for name in _DECLARATION_RE.findall(_COMMENT_RE.sub("", self.contents[unit])):
                if name in names:
                    raise CompilerError(f"contract name {name} is declared in both {names[name]} and {unit}")
                names[name] = unit
        return names


def source_hash(contents: dict[str, str]) -> str:
    """SHA-256 (hex) over the sorted (source unit name, content) pairs, each length-prefixed."""
    h = hashlib.sha256()
    for unit in sorted(contents):
        name = unit.encode("utf-8")
        body = contents[unit].encode("utf-8")
        h.update(b"%d:" % len(name) + name + b"%d:" % len(body) + body)
    return h.hexdigest()


def compiler_settings() -> dict[str, Any]:
    """The compiler settings recorded in (and required of) every artifact."""
    return {"evmVersion": EVM_VERSION, "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS}}


def collect_sources(root: Path | None = None, toolchain: Toolchain | None = None) -> SourceSet:
    """Read the project sources under ``root/contracts`` (default: the checkout's) and, recursively,
    everything they import."""
    root = _source_root(root)
    toolchain = toolchain or Toolchain.default()
    base = root / CONTRACTS_DIR
    if not base.is_dir():
        raise CompilerError(f"no contracts directory at {base}")
    project = sorted(
        path.relative_to(root).as_posix()
        for path in base.rglob("*.sol")
        if not _EXCLUDED_DIRS.intersection(path.relative_to(base).parts[:-1])
    )
    if not project:
        raise CompilerError(f"no Solidity sources under {base}")
    contents: dict[str, str] = {}
    pending = list(project)
    importer: dict[str, str] = {}
    while pending:
        unit = pending.pop()
        if unit in contents:
            continue
        file = _locate(unit, root, toolchain)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError as err:
            via = f" (imported by {importer[unit]})" if unit in importer else ""
            raise CompilerError(f"cannot find Solidity source {unit}{via} at {file}") from err
        except (OSError, UnicodeDecodeError) as err:
            raise CompilerError(f"cannot read Solidity source {file}: {err}") from err
        contents[unit] = text
        for target in _IMPORT_RE.findall(_COMMENT_RE.sub("", text)):
            resolved = _resolve_import(unit, target)
            importer.setdefault(resolved, unit)
            pending.append(resolved)
    return SourceSet(root=root, project=tuple(project), contents=contents)


def compiler_version(toolchain: Toolchain | None = None) -> str:
    """The long version of the pinned compiler, e.g. ``0.8.37+commit.f401782d.Emscripten.clang``."""
    toolchain = toolchain or Toolchain.default()
    try:
        proc = subprocess.run(
            [str(toolchain.solc), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CompilerError(f"cannot run the Solidity compiler {toolchain.solc}: {err}") from err
    match = re.search(r"Version:\s*(\S+)", proc.stdout)
    if proc.returncode != 0 or match is None:
        raise CompilerError(f"{toolchain.solc} --version failed: {proc.stderr.strip() or proc.stdout.strip()}")
    version = match.group(1)
    if version.split("+")[0] != SOLC_VERSION:
        raise CompilerError(f"the compiler at {toolchain.solc} is solc {version}, fedchain pins {SOLC_VERSION}")
    return version


def openzeppelin_version(toolchain: Toolchain | None = None) -> str:
    """Version of the installed ``@openzeppelin/contracts`` package."""
    toolchain = toolchain or Toolchain.default()
    package = toolchain.node_modules / "@openzeppelin" / "contracts" / "package.json"
    try:
        return str(json.loads(package.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError) as err:
        raise CompilerError(f"cannot read the OpenZeppelin version from {package}: {err}") from err


def build(
    check: bool = False,
    *,
    root: Path | None = None,
    artifacts_dir: Path | None = None,
    toolchain: Toolchain | None = None,
    force: bool = False,
) -> BuildResult:
    """Compile the contracts and write their artifacts, or with ``check`` verify the committed ones.

    Fresh artifacts (same source hash, compiler and settings) are left alone and nothing is
    compiled unless ``force``. With ``check`` nothing is written and :class:`StaleArtifactError`
    names every artifact that is missing, stale or orphaned. ``root`` is the project root holding
    ``contracts/`` (default: the checkout; :class:`NoSourcesError` in an installed fedchain);
    ``artifacts_dir`` defaults to the package's :data:`ARTIFACTS_DIR`.
    """
    started = time.perf_counter()
    root = _source_root(root)
    toolchain = toolchain or Toolchain.default()
    out_dir = artifacts_dir or ARTIFACTS_DIR
    sources = collect_sources(root, toolchain)
    digest = sources.source_hash
    declared = sources.declared_contracts()
    version = compiler_version(toolchain)
    states = _compare(out_dir, declared, digest, version)
    fresh = all(s.state == "fresh" for s in states)

    if check:
        states += _reverts(root, out_dir, declared, write=False)
        if not all(s.state == "fresh" for s in states):
            raise StaleArtifactError(
                {_display(s.path, root): s.reason for s in states if s.state != "fresh"}
            )
        log.info("contract artifacts fresh (sourceHash %s)", digest)
        return _result(digest, version, False, True, states, sources, started)
    if fresh and not force:
        log.info("contract artifacts fresh (sourceHash %s); nothing to compile", digest)
        states += _reverts(root, out_dir, declared, write=True)
        return _result(digest, version, False, False, states, sources, started)

    output = _compile(sources, toolchain)
    oz = openzeppelin_version(toolchain)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[ArtifactState] = []
    for name, unit in sorted(declared.items()):
        compiled = output.get("contracts", {}).get(unit, {}).get(name)
        if compiled is None:
            raise CompilerError(f"solc produced no output for {name} in {unit}")
        artifact = {
            "format": ARTIFACT_FORMAT,
            "contractName": name,
            "sourceName": unit,
            "abi": compiled["abi"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
            "immutableReferences": _immutable_ranges(compiled["evm"]["deployedBytecode"]),
            "compiler": {"version": SOLC_VERSION, "longVersion": version},
            "settings": compiler_settings(),
            "sourceHash": digest,
            "sources": {u: hashlib.sha256(c.encode("utf-8")).hexdigest() for u, c in sorted(sources.contents.items())},
            "openzeppelinVersion": oz,
            "userdoc": compiled.get("userdoc", {}),
            "devdoc": compiled.get("devdoc", {}),
        }
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(artifact, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        log.info("wrote %s", path)
        written.append(ArtifactState(name, path, "written"))
    for state in states:
        if state.state == "orphan":
            state.path.unlink()
            log.info("removed orphaned artifact %s", state.path)
            written.append(ArtifactState(state.name, state.path, "removed", state.reason))
    written += _reverts(root, out_dir, declared, write=True)
    return _result(digest, version, True, False, written, sources, started)


def artifact_path(name: str, artifacts_dir: Path | None = None) -> Traversable:
    """The committed artifact of contract ``name``: in ``artifacts_dir``, or by default the
    package resource ``fedchain/chain/artifacts/<name>.json``."""
    if not _ARTIFACT_NAME_RE.match(name):
        raise ArtifactNotFoundError(f"invalid contract name {name!r}")
    if artifacts_dir is not None:
        return artifacts_dir / f"{name}.json"
    return resources.files(_ARTIFACTS_PACKAGE).joinpath("artifacts", f"{name}.json")


def load_artifact(name: str, artifacts_dir: Path | None = None) -> dict[str, Any]:
    """The committed artifact of contract ``name`` (``abi``, ``bytecode``, ``deployedBytecode``, ...)."""
    path = artifact_path(name, artifacts_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError) as err:
        raise ArtifactNotFoundError(
            f"no artifact for contract {name!r} at {path}; run 'fedchain contracts build'"
        ) from err
    except (OSError, ValueError) as err:
        raise ArtifactNotFoundError(f"cannot read the artifact {path}: {err}") from err
    missing = [k for k in ("contractName", "abi", "bytecode", "deployedBytecode", "sourceHash") if k not in data]
    if not isinstance(data, dict) or missing or data.get("contractName") != name:
        raise ArtifactNotFoundError(f"{path} is not a fedchain artifact of {name!r} (missing {missing or 'contractName'})")
    return data


# ---------------------------------------------------------------- internals


def _locate(unit: str, root: Path, toolchain: Toolchain) -> Path:
    if unit.startswith(_PACKAGE_PREFIXES):
        return toolchain.node_modules / unit
    return root / unit


def _resolve_import(importer: str, target: str) -> str:
    """Source unit name of ``target`` imported from ``importer`` (solc's resolution rules)."""
    if target.startswith(("./", "../")):
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(importer), target))
        if resolved.startswith("../"):
            raise CompilerError(f"{importer} imports {target}, which leaves the source tree")
        return resolved
    return target


def _compare(out_dir: Path, declared: dict[str, str], digest: str, version: str) -> list[ArtifactState]:
    states: list[ArtifactState] = []
    settings = compiler_settings()
    for name in sorted(declared):
        path = out_dir / f"{name}.json"
        if not path.exists():
            states.append(ArtifactState(name, path, "missing", "missing"))
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            states.append(ArtifactState(name, path, "stale", f"unreadable ({err})"))
            continue
        if not isinstance(data, dict) or data.get("format") != ARTIFACT_FORMAT:
            reason = "not a fedchain artifact"
        elif data.get("sourceHash") != digest:
            reason = f"sourceHash {str(data.get('sourceHash'))[:12]}... != sources {digest[:12]}..."
        elif data.get("compiler", {}).get("longVersion") != version:
            reason = f"compiled by {data.get('compiler', {}).get('longVersion')}, the pinned compiler is {version}"
        elif data.get("settings") != settings:
            reason = f"settings {data.get('settings')} != {settings}"
        elif not _looks_compiled(data):
            reason = "abi or bytecode missing"
        else:
            states.append(ArtifactState(name, path, "fresh"))
            continue
        states.append(ArtifactState(name, path, "stale", reason))
    if out_dir.is_dir():
        for path in sorted(out_dir.glob("*.json")):
            if path.stem not in declared:
                states.append(ArtifactState(path.stem, path, "orphan", "no such contract in the sources"))
    return states


def _reverts(root: Path, out_dir: Path, declared: dict[str, str], *, write: bool) -> list[ArtifactState]:
    """The generated :mod:`fedchain.reverts` (``root/fedchain/reverts.py``) against the artifacts it is
    generated from (those of :data:`revertgen.REVERTS_CONTRACTS` the sources declare): compared, or with
    ``write`` rewritten when it differs. Nothing when one of them is absent (the artifact itself is then
    reported)."""
    contracts = [c for c in revertgen.REVERTS_CONTRACTS if c in declared]
    if revertgen.REVERTS_CONTRACT not in contracts:
        return []
    path = root / revertgen.REVERTS_MODULE
    try:
        artifacts = [load_artifact(c, out_dir) for c in contracts]
    except ArtifactNotFoundError:
        return []
    name = "fedchain.reverts"
    try:
        if write:
            written = revertgen.write(path, artifacts)
            if written:
                log.info("wrote %s", path)
            return [ArtifactState(name, path, "written" if written else "fresh")]
        reason = revertgen.compare(path, artifacts)
    except RevertGenerationError as err:
        raise CompilerError(f"cannot generate {revertgen.REVERTS_MODULE}: {err}") from err
    if reason is None:
        return [ArtifactState(name, path, "fresh")]
    return [ArtifactState(name, path, "missing" if reason == "missing" else "stale", reason)]


def _looks_compiled(data: dict[str, Any]) -> bool:
    return (
        isinstance(data.get("abi"), list)
        and isinstance(data.get("bytecode"), str)
        and isinstance(data.get("deployedBytecode"), str)
        and data["bytecode"].startswith("0x")
        and isinstance(data.get("immutableReferences"), list)
    )


def _compile(sources: SourceSet, toolchain: Toolchain) -> dict[str, Any]:
    import solcx
    from solcx.exceptions import SolcError

    standard_input = {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sorted(sources.contents.items())},
        "settings": {
            **compiler_settings(),
            "outputSelection": {
                unit: {
                    "*": [
                        "abi",
                        "evm.bytecode.object",
                        "evm.deployedBytecode.object",
                        "evm.deployedBytecode.immutableReferences",
                        "userdoc",
                        "devdoc",
                    ]
                }
                for unit in sources.project
            },
        },
    }
    log.info("compiling %d source units with %s", len(sources.contents), toolchain.solc)
    try:
        output: dict[str, Any] = solcx.compile_standard(standard_input, solc_binary=toolchain.solc)
    except SolcError as err:
        raise CompilerError(f"solc failed: {err.message if hasattr(err, 'message') else err}") from err
    except (OSError, ValueError) as err:
        raise CompilerError(f"cannot run the Solidity compiler {toolchain.solc}: {err}") from err
    for entry in output.get("errors", []):
        if entry.get("severity") == "warning":
            log.warning("solc: %s", entry.get("formattedMessage", entry.get("message", "")).strip())
    return output


def _immutable_ranges(deployed: dict[str, Any]) -> list[list[int]]:
    """The (start, length) byte ranges of the runtime code that the constructor fills with immutables,
    sorted: solc leaves them zero in ``deployedBytecode``."""
    ranges = {
        (int(entry["start"]), int(entry["length"]))
        for entries in (deployed.get("immutableReferences") or {}).values()
        for entry in entries
    }
    return [[start, length] for start, length in sorted(ranges)]


def _display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _result(
    digest: str,
    version: str,
    compiled: bool,
    checked: bool,
    states: list[ArtifactState],
    sources: SourceSet,
    started: float,
) -> BuildResult:
    return BuildResult(
        source_hash=digest,
        compiler=version,
        compiled=compiled,
        checked=checked,
        artifacts=tuple(states),
        sources=tuple(sorted(sources.contents)),
        elapsed_s=round(time.perf_counter() - started, 3),
    )
