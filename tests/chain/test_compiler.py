"""The offline contract build: committed artifacts are fresh, and any change to a compiled source
(project or OpenZeppelin), the artifact set, or the sources' validity is caught with a clear error."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedchain.chain import compiler, revertgen
from fedchain.chain.compiler import (
    BuildResult,
    Toolchain,
    build,
    collect_sources,
    load_artifact,
    source_hash,
)
from fedchain.cli import contracts as contracts_cli
from fedchain.cli.main import cli
from fedchain.errors import (
    ArtifactNotFoundError,
    CompilerError,
    ConfigError,
    ExitCode,
    RevertGenerationError,
    StaleArtifactError,
)

REPO = Path(__file__).resolve().parents[2]
REAL_CONTRACTS = REPO / "contracts"
ARTIFACTS = Path("fedchain", "chain", "artifacts")
REVERTS = Path("fedchain", "reverts.py")
CONTRACTS = [
    "Federation", "FederationGovernor", "FederationIncentives", "FederationMembership", "FederationRewardToken",
    "FederationTimelock", "IFederation", "IFederationIncentives", "IFederationMembership",
]
ALL_FRESH = [*((name, "fresh") for name in CONTRACTS), ("fedchain.reverts", "fresh")]
EIP170_LIMIT = 24_576  # bytes of runtime code a contract may have (EIP-170)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the contract sources, committed artifacts and generated reverts module under a temporary
    project root, laid out like the repository (sources in contracts/, artifacts in fedchain/chain/artifacts/,
    the module generated from the Federation artifact in fedchain/reverts.py)."""
    (tmp_path / "contracts").mkdir()
    (tmp_path / ARTIFACTS).mkdir(parents=True)
    for source in REAL_CONTRACTS.glob("*.sol"):
        shutil.copy(source, tmp_path / "contracts" / source.name)
    for artifact in compiler.ARTIFACTS_DIR.glob("*.json"):
        shutil.copy(artifact, tmp_path / ARTIFACTS / artifact.name)
    shutil.copy(REPO / REVERTS, tmp_path / REVERTS)
    return tmp_path


def build_in(project: Path, **kwargs: Any) -> BuildResult:
    """:func:`build` over a copied project, reading and writing its own artifacts."""
    return build(root=project, artifacts_dir=project / ARTIFACTS, **kwargs)


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_committed_artifacts_are_fresh() -> None:
    result = build(check=True)
    assert result.checked and not result.compiled
    assert [(a.name, a.state) for a in result.artifacts] == ALL_FRESH


def test_source_hash_covers_every_imported_openzeppelin_file() -> None:
    sources = collect_sources()
    assert "contracts/Federation.sol" in sources.contents
    assert "@openzeppelin/contracts/access/AccessControl.sol" in sources.contents
    assert "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol" in sources.contents
    # transitively imported through AccessControl
    assert "@openzeppelin/contracts/utils/introspection/ERC165.sol" in sources.contents
    assert not any(unit.startswith("contracts/test/") for unit in sources.contents)
    artifact = load_artifact("Federation")
    assert artifact["sourceHash"] == source_hash(sources.contents) == sources.source_hash
    assert sorted(artifact["sources"]) == sorted(sources.contents)


def test_source_hash_depends_on_names_and_contents() -> None:
    base = {"a.sol": "x", "b.sol": "y"}
    assert source_hash(base) == source_hash(dict(reversed(list(base.items()))))
    assert source_hash(base) != source_hash({"a.sol": "x", "b.sol": "y "})
    assert source_hash(base) != source_hash({"a.sol": "x", "c.sol": "y"})
    assert source_hash({"a.sol": "xb.sol"}) != source_hash({"a.sol": "x", "b.sol": ""})


def test_artifact_records_compiler_settings_and_openzeppelin() -> None:
    artifact = load_artifact("Federation")
    assert artifact["contractName"] == "Federation"
    assert artifact["compiler"]["version"] == "0.8.37"
    assert artifact["compiler"]["longVersion"].startswith("0.8.37+commit.")
    assert artifact["settings"] == {"evmVersion": "cancun", "optimizer": {"enabled": True, "runs": 500}}
    assert artifact["openzeppelinVersion"] == compiler.openzeppelin_version() == "5.7.0"
    assert artifact["bytecode"].startswith("0x60") and len(artifact["deployedBytecode"]) > 1000


def test_artifact_abi_has_the_agreed_interface() -> None:
    abi = load_artifact("Federation")["abi"]
    by_kind: dict[str, set[str]] = {}
    for item in abi:
        by_kind.setdefault(item["type"], set()).add(item.get("name", ""))
    assert {
        "register", "admit", "remove", "configureTask", "openRound", "commitUpdate", "finalizeRound",
        "closeRound", "participant", "activeCount", "latestRoundId", "currentModelDigest", "task",
        "getRound", "ADMIN_ROLE", "AGGREGATOR_ROLE",
        "sealUpdate", "revealUpdate", "revealPhaseOver", "sealOf",
        "membership", "setVerificationPolicy", "verificationPolicy", "attestRound", "attestationCounts",
        "attestationOf", "attestationQuorum", "currentModelRound", "disputeRound", "contestExclusion",
        "answerContest", "contestOf", "configurePrivateTask", "commitPrivateUpdate", "epsilonSpent", "privacyPolicy",
        "openSecureRound", "postAdvertisement", "postUnmaskingShares", "advertisePhaseOver",
        "secureParticipation", "openSignedRound", "postCommitmentSet", "signedRound",
    } <= by_kind["function"]
    # the seal, the Merkle leaf and the inclusion check are computed off chain (fedchain.ports.update_seal,
    # fedchain.codec.merkle): the runtime code has no room for their views; isPrivateRound is getRound().privateRound
    assert not {"updateSeal", "commitmentLeaf", "verifyInclusion", "isPrivateRound"} & by_kind["function"]
    assert {
        "ParticipantRegistered", "ParticipantAdmitted", "ParticipantRemoved", "TaskConfigured",
        "RoundOpened", "UpdateCommitted", "RoundFinalized", "RoundClosed", "UpdateSealed",
        "VerificationPolicySet", "RoundAttested", "RoundDisputed", "ExclusionContested", "ContestAnswered",
        "PrivacyPolicySet", "PrivacySpent", "SecureRoundOpened", "AdvertisementPosted", "UnmaskingSharesPosted",
        "SignedRoundOpened", "CommitmentSetPosted",
    } <= by_kind["event"]
    own_errors = {name for name in by_kind["error"] if not name.startswith("AccessControl")}
    assert own_errors == {
        "Federation" + name
        for name in (
            "AlreadyRegistered", "InvalidRegistration", "InvalidStatus", "RoundInProgress", "InvalidTask",
            "TaskNotConfigured", "BaseModelMismatch", "InvalidRound", "NotRegistered", "NotActive",
            "UnknownRound", "RoundNotOpen", "CommitTooLate", "DuplicateCommit", "InvalidCommitment",
            "CommitPhaseActive", "InvalidIncludedCount", "TooFewUpdates", "InvalidResult",
            "CommitWindowTooLong", "TooManySamples", "RevealWindowTooLong", "CommitRevealRound",
            "NotCommitRevealRound", "NotSealed", "SealMismatch", "RevealTooLate", "RevealPhaseActive",
            "RoundNotFinalized", "InvalidPolicy", "NotIncluded", "AlreadyAttested", "AttestationModelMismatch",
            "InvalidAttestation", "AttestationQuorumNotMet", "InvalidDispute", "ContestWindowClosed",
            "AlreadyContested", "InvalidContest", "NoContest", "ContestAnswered", "PrivacyClaimRequired",
            "NotPrivateRound", "PrivacyClaimDecreased", "PrivacyBudgetExceeded", "NotSecureRound",
            "AdvertiseTooLate", "AdvertisePhaseActive", "DuplicateAdvertisement", "NotAdvertised", "NotCommitted",
            "DuplicateUnmaskingShares", "UnmaskTooLate", "UnmaskPhaseActive", "PrivateSignedRound",
            "NotSignedRound", "CommitmentSetPosted", "CommitmentSetTooLate", "InvalidSetCount",
            "EscapeWindowNotOpen", "EscapeWindowClosed",
        )
    }
    commit = next(i for i in abi if i.get("name") == "commitUpdate")
    assert [p["type"] for p in commit["inputs"]] == ["uint256", "bytes32", "string", "uint64", "bytes32"]
    private = next(i for i in abi if i.get("name") == "commitPrivateUpdate")
    assert [p["type"] for p in private["inputs"]] == [
        "uint256", "bytes32", "string", "uint64", "bytes32", "uint64", "bytes32"
    ]
    configure_private = next(i for i in abi if i.get("name") == "configurePrivateTask")
    assert [(p["name"], p["type"]) for p in configure_private["inputs"]][-2:] == [
        ("privacyPolicyDigest", "bytes32"), ("epsilonBudget", "uint64")
    ]
    register = next(i for i in abi if i.get("name") == "register")
    assert [(p["name"], p["type"]) for p in register["inputs"]][-1] == ("declaredSamples", "uint64")
    secure = next(i for i in abi if i.get("name") == "openSecureRound")
    assert [(p["name"], p["type"]) for p in secure["inputs"]] == [
        ("baseModelDigest", "bytes32"), ("baseModelCid", "string"), ("advertiseDuration", "uint64"),
        ("commitDuration", "uint64"), ("minUpdates", "uint32"), ("unmaskDuration", "uint64"),
    ]
    for name in ("postAdvertisement", "postUnmaskingShares"):
        post = next(i for i in abi if i.get("name") == name)
        assert [(p["name"], p["type"]) for p in post["inputs"]] == [
            ("roundId", "uint256"), ("digest", "bytes32"), ("cid", "string")
        ]
    signed = next(i for i in abi if i.get("name") == "openSignedRound")
    assert [(p["name"], p["type"]) for p in signed["inputs"]] == [
        ("baseModelDigest", "bytes32"), ("baseModelCid", "string"), ("commitDuration", "uint64"),
        ("minUpdates", "uint32"), ("escapeDuration", "uint64"),
    ]
    posted = next(i for i in abi if i.get("name") == "postCommitmentSet")
    assert [(p["name"], p["type"]) for p in posted["inputs"]] == [
        ("roundId", "uint256"), ("setRoot", "bytes32"), ("count", "uint32"), ("setDigest", "bytes32"),
        ("setCid", "string"),
    ]
    configure = next(i for i in abi if i.get("name") == "configureTask")
    assert [(p["name"], p["type"]) for p in configure["inputs"]][-1] == ("maxCommitDuration", "uint64")


def test_governance_contracts_fit_eip170_and_record_their_immutables() -> None:
    """The Governor stays under 24 KB with the project's optimizer settings; every artifact lists the byte ranges its
    constructor fills with immutables (zero in deployedBytecode), so that a deployment's code can be checked."""
    sizes = {}
    for name in ("Federation", "FederationGovernor", "FederationMembership", "FederationTimelock",
                 "FederationIncentives", "FederationRewardToken"):
        artifact = load_artifact(name)
        code = bytes.fromhex(artifact["deployedBytecode"][2:])
        sizes[name] = len(code)
        for start, length in artifact["immutableReferences"]:
            assert length == 32 and code[start : start + length] == bytes(32), (name, start)
    assert all(size < EIP170_LIMIT for size in sizes.values()), sizes
    assert sizes["Federation"] <= EIP170_LIMIT - 200, sizes  # a margin for the next fix (contracts/README.md)
    assert len(load_artifact("Federation")["immutableReferences"]) >= 1  # the membership token's address
    assert load_artifact("FederationTimelock")["immutableReferences"] == []


def test_reverts_module_covers_every_deployed_contract() -> None:
    """fedchain.reverts has a class for each custom error of the Federation and of its governance stack, one class
    for an error several of them declare."""
    from fedchain.reverts import REVERTS, TypedRevertError

    contracts = {n: cls.CONTRACTS for n, cls in REVERTS.items() if issubclass(cls, TypedRevertError)}
    for name in revertgen.REVERTS_CONTRACTS:
        errors = {item["name"] for item in load_artifact(name)["abi"] if item["type"] == "error"}
        assert errors <= set(REVERTS), (name, sorted(errors - set(REVERTS)))
        assert all(name in contracts[error] for error in errors)
    assert set(contracts["AccessControlUnauthorizedAccount"]) == {"Federation", "FederationTimelock"}


def test_generator_refuses_one_error_name_with_two_signatures() -> None:
    one = {"contractName": "A", "sourceHash": "h", "abi": [{"type": "error", "name": "E", "inputs": []}]}
    two = {"contractName": "B", "sourceHash": "h",
           "abi": [{"type": "error", "name": "E", "inputs": [{"name": "x", "type": "uint256"}]}]}
    with pytest.raises(RevertGenerationError, match=r"custom error E is E\(\) \[\] in A but E\(uint256\) \['x'\] in B"):
        revertgen.render([one, two])
    with pytest.raises(RevertGenerationError, match="different builds"):
        revertgen.render([one, dict(two, sourceHash="other", abi=[])])


def test_copied_sources_are_fresh(project: Path) -> None:
    result = build_in(project, check=True)
    assert [(a.name, a.state) for a in result.artifacts] == ALL_FRESH


def test_modified_source_is_stale(project: Path) -> None:
    _append(project / "contracts" / "Federation.sol", "\n// a change\n")
    with pytest.raises(StaleArtifactError, match=r"fedchain/chain/artifacts/Federation\.json: sourceHash") as info:
        build_in(project, check=True)
    assert isinstance(info.value, ConfigError) and info.value.exit_code == ExitCode.CONFIG
    assert list(info.value.stale) == [f"fedchain/chain/artifacts/{name}.json" for name in CONTRACTS]


def test_modified_openzeppelin_file_is_stale(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    real = Toolchain.default()
    modules = tmp_path_factory.mktemp("node_modules")
    for unit in collect_sources().contents:
        if unit.startswith("@openzeppelin/"):
            (modules / unit).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(real.node_modules / unit, modules / unit)
    toolchain = Toolchain(solc=real.solc, node_modules=modules)
    assert build_in(project, check=True, toolchain=toolchain).artifacts[0].state == "fresh"
    _append(modules / "@openzeppelin/contracts/utils/Context.sol", "\n// upgraded\n")
    with pytest.raises(StaleArtifactError, match="sourceHash"):
        build_in(project, check=True, toolchain=toolchain)


def test_tampered_artifact_settings_are_stale(project: Path) -> None:
    path = project / ARTIFACTS / "Federation.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["settings"]["optimizer"]["runs"] = 200
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(StaleArtifactError, match="settings"):
        build_in(project, check=True)


def test_missing_and_orphaned_artifacts_are_stale(project: Path) -> None:
    artifacts = project / ARTIFACTS
    (artifacts / "Federation.json").rename(artifacts / "OldFederation.json")
    with pytest.raises(StaleArtifactError) as info:
        build_in(project, check=True)
    assert info.value.stale == {
        "fedchain/chain/artifacts/Federation.json": "missing",
        "fedchain/chain/artifacts/OldFederation.json": "no such contract in the sources",
    }


def test_build_rewrites_a_stale_artifact_then_it_is_fresh(project: Path) -> None:
    _append(project / "contracts" / "Federation.sol", "\n// a comment changes the metadata, not the ABI\n")
    result = build_in(project)
    assert result.compiled
    assert [(a.name, a.state) for a in result.artifacts] == [
        *((name, "written") for name in CONTRACTS), ("fedchain.reverts", "written")
    ]
    rebuilt = load_artifact("Federation", project / ARTIFACTS)
    assert rebuilt["abi"] == load_artifact("Federation")["abi"]
    assert rebuilt["sourceHash"] == result.source_hash != load_artifact("Federation")["sourceHash"]
    again = build_in(project)
    assert not again.compiled and again.artifacts[0].state == "fresh"
    assert build_in(project, check=True).artifacts[0].state == "fresh"


def test_edited_reverts_module_is_stale(project: Path) -> None:
    _append(project / REVERTS, "\n# a hand edit\n")
    with pytest.raises(
        StaleArtifactError,
        match=r"fedchain/reverts\.py: differs from what Federation\.json, FederationGovernor\.json, "
        r"FederationTimelock\.json, FederationMembership\.json, FederationIncentives\.json, "
        r"FederationRewardToken\.json generate",
    ):
        build_in(project, check=True)


def test_missing_reverts_module_is_stale(project: Path) -> None:
    (project / REVERTS).unlink()
    with pytest.raises(StaleArtifactError) as info:
        build_in(project, check=True)
    assert info.value.stale == {"fedchain/reverts.py": "missing"}


def test_reverts_module_of_another_artifact_is_stale(project: Path) -> None:
    """The artifacts are fresh but the module was generated from an older ABI: --check names only the module."""
    path = project / ARTIFACTS / "Federation.json"
    artifact = json.loads(path.read_text(encoding="utf-8"))
    older = dict(artifact, abi=[i for i in artifact["abi"] if i.get("name") != "FederationInvalidRound"])
    others = [load_artifact(name, project / ARTIFACTS) for name in revertgen.REVERTS_CONTRACTS[1:]]
    (project / REVERTS).write_text(revertgen.render([older, *others]), encoding="utf-8")
    with pytest.raises(StaleArtifactError) as info:
        build_in(project, check=True)
    assert list(info.value.stale) == ["fedchain/reverts.py"]


def test_build_rewrites_a_stale_reverts_module_without_compiling(project: Path) -> None:
    (project / REVERTS).write_text("stale\n", encoding="utf-8")
    result = build_in(project)
    assert not result.compiled
    assert [(a.name, a.state) for a in result.artifacts][-1] == ("fedchain.reverts", "written")
    assert (project / REVERTS).read_text(encoding="utf-8") == (REPO / REVERTS).read_text(encoding="utf-8")
    assert [(a.name, a.state) for a in build_in(project, check=True).artifacts] == ALL_FRESH


def test_changed_error_docs_regenerate_the_reverts_module(project: Path) -> None:
    source = project / "contracts" / "IFederation.sol"
    text = source.read_text(encoding="utf-8")
    old = "/// @notice No task has been configured yet."
    assert old in text
    source.write_text(text.replace(old, "/// @notice The admin has not configured a task yet."), encoding="utf-8")
    result = build_in(project)
    assert result.compiled and ("fedchain.reverts", "written") in [(a.name, a.state) for a in result.artifacts]
    generated = (project / REVERTS).read_text(encoding="utf-8")
    assert '"""The admin has not configured a task yet.' in generated
    assert f'SOURCE_HASH = "{result.source_hash}"' in generated


def test_cli_check_fails_on_a_stale_reverts_module(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _append(project / REVERTS, "\n# a hand edit\n")
    monkeypatch.setattr(contracts_cli, "build", functools.partial(build_in, project))
    result = CliRunner().invoke(cli, ["contracts", "build", "--check"])
    assert result.exit_code == ExitCode.CONFIG
    assert result.output.startswith("error: stale contract artifacts (fedchain/reverts.py: differs")


def test_compile_error_names_the_file(project: Path) -> None:
    (project / "contracts" / "Broken.sol").write_text(
        "// SPDX-License-Identifier: Apache-2.0\npragma solidity 0.8.37;\ncontract Broken { function f( }\n",
        encoding="utf-8",
    )
    with pytest.raises(CompilerError, match=r"contracts/Broken\.sol"):
        build_in(project)


def test_missing_import_names_the_importer(project: Path) -> None:
    (project / "contracts" / "Importer.sol").write_text(
        'pragma solidity 0.8.37;\nimport {Nothing} from "./lib/Nothing.sol";\n', encoding="utf-8"
    )
    with pytest.raises(CompilerError, match=r"contracts/lib/Nothing\.sol \(imported by contracts/Importer\.sol\)"):
        build_in(project, check=True)


def test_load_artifact_rejects_unknown_and_odd_names() -> None:
    with pytest.raises(ArtifactNotFoundError, match="no artifact for contract 'Nope'"):
        load_artifact("Nope")
    with pytest.raises(ArtifactNotFoundError, match="invalid contract name"):
        load_artifact("../Federation")


def test_cli_check_prints_one_json_document() -> None:
    result = CliRunner().invoke(cli, ["contracts", "build", "--check", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["checked"] is True and payload["compiled"] is False
    assert payload["artifacts"] == [
        *({"name": n, "path": f"fedchain/chain/artifacts/{n}.json", "reason": "", "state": "fresh"} for n in CONTRACTS),
        {"name": "fedchain.reverts", "path": "fedchain/reverts.py", "reason": "", "state": "fresh"},
    ]


def test_cli_check_fails_on_stale_artifacts(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _append(project / "contracts" / "Federation.sol", "\n// a change\n")
    monkeypatch.setattr(contracts_cli, "build", functools.partial(build_in, project))
    result = CliRunner().invoke(cli, ["contracts", "build", "--check"])
    assert result.exit_code == ExitCode.CONFIG
    assert result.output.startswith("error: stale contract artifacts (fedchain/chain/artifacts/Federation.json: sourceHash")


def test_check_without_sources_says_there_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler, "checkout_root", lambda: None)
    result = CliRunner().invoke(cli, ["contracts", "build", "--check"])
    assert result.exit_code == ExitCode.CONFIG
    assert result.output.startswith("error: no contract sources to check or compile")
