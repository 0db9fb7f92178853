"""The generated typed reverts (fedchain/reverts.py) and the revert decoder that returns them: no chain needed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from fedchain import reverts
from fedchain.chain import revertgen
from fedchain.chain.abi import RevertDecoder, signature
from fedchain.chain.compiler import load_artifact
from fedchain.chain.federation import load_federation_artifact
from fedchain.errors import ContractRevertError, ExitCode, RevertGenerationError
from fedchain.reverts import (
    REVERTS,
    FederationCommitTooLate,
    FederationInvalidRound,
    FederationInvalidStatus,
    FederationTaskNotConfigured,
    TypedRevertError,
)

ARTIFACT = load_federation_artifact()
ARTIFACTS = [load_artifact(name) for name in revertgen.REVERTS_CONTRACTS]  # the Federation and its governance stack
ABI_ERRORS = {str(item["name"]): item for a in ARTIFACTS for item in a["abi"] if item["type"] == "error"}
ADDRESS = to_checksum_address("0x" + keccak(b"participant")[:20].hex())


def _revert_data(name: str, *values: object) -> bytes:
    item = ABI_ERRORS[name]
    types = [str(p["type"]) for p in item["inputs"]]
    return keccak(signature(item).encode())[:4] + (abi_encode(types, list(values)) if types else b"")


def test_committed_module_is_what_the_committed_artifact_generates() -> None:
    assert Path(reverts.__file__).read_text(encoding="utf-8") == revertgen.render(ARTIFACTS)
    assert reverts.SOURCE_HASH == ARTIFACT["sourceHash"]


def test_one_class_per_custom_error_of_the_contract() -> None:
    assert sorted(REVERTS) == sorted(ABI_ERRORS)
    for name, cls in REVERTS.items():
        assert cls.__name__ == name and issubclass(cls, TypedRevertError)
        assert cls.SIGNATURE == signature(ABI_ERRORS[name])
        assert cls.SELECTOR == keccak(cls.SIGNATURE.encode())[:4]
        assert [abi for abi, _ in cls.PARAMS] == [p["name"] for p in ABI_ERRORS[name]["inputs"]]
        assert cls.exit_code == ExitCode.CONTRACT_REVERT


def test_module_imports_nothing_from_fedchain_but_errors() -> None:
    tree = ast.parse(Path(reverts.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"__future__", "collections.abc", "typing", "fedchain.errors"}


def test_docstrings_come_from_the_natspec() -> None:
    assert FederationCommitTooLate.__doc__ is not None
    assert FederationCommitTooLate.__doc__.startswith("The commit deadline of the round has passed.")
    assert "deadline: Its deadline (unix seconds, inclusive)." in FederationCommitTooLate.__doc__
    assert "(``IFederation.ParticipantStatus``)" in (FederationInvalidStatus.__doc__ or "")


def test_typed_constructor_sets_name_args_and_attributes() -> None:
    err = FederationInvalidRound("commitDuration", 0, function="openRound")
    assert (err.field, err.value) == ("commitDuration", 0)
    assert (err.error_name, err.error_args) == ("FederationInvalidRound", {"field": "commitDuration", "value": 0})
    assert str(err) == "openRound: contract reverted with FederationInvalidRound(field=commitDuration, value=0)"
    assert isinstance(err, ContractRevertError) and err.exit_code == ExitCode.CONTRACT_REVERT


def test_from_args_maps_abi_names_to_attributes() -> None:
    err = FederationCommitTooLate.from_args({"roundId": 4, "deadline": 99}, function="commitUpdate")
    assert type(err) is FederationCommitTooLate
    assert (err.round_id, err.deadline, err.function) == (4, 99, "commitUpdate")


@pytest.mark.parametrize(
    ("name", "values", "attributes"),
    [
        ("FederationInvalidRound", ("commitDuration", 2**64 - 1), {"field": "commitDuration", "value": 2**64 - 1}),
        ("FederationInvalidStatus", (ADDRESS, 2), {"participant": ADDRESS, "status": 2}),
        ("FederationBaseModelMismatch", (b"\x01" * 32, b"\x02" * 32), {"expected": b"\x01" * 32, "given": b"\x02" * 32}),
        ("FederationTaskNotConfigured", (), {}),
    ],
)
def test_decoder_returns_the_generated_class(name: str, values: tuple[object, ...], attributes: dict[str, object]) -> None:
    err = RevertDecoder(ARTIFACT["abi"]).decode(_revert_data(name, *values), function="f")
    assert type(err) is REVERTS[name]
    assert {attr: getattr(err, attr) for attr in attributes} == attributes
    assert err.error_name == name and list(err.error_args.values()) == list(attributes.values())


def test_decoder_keeps_a_foreign_error_of_the_same_name_generic() -> None:
    """Another contract's FederationTaskNotConfigured(uint256) is not the Federation error."""
    foreign = [{"type": "error", "name": "FederationTaskNotConfigured", "inputs": [{"name": "x", "type": "uint256"}]}]
    data = keccak(b"FederationTaskNotConfigured(uint256)")[:4] + abi_encode(["uint256"], [7])
    err = RevertDecoder(foreign).decode(data)
    assert type(err) is ContractRevertError
    assert err is not None and (err.error_name, err.error_args) == ("FederationTaskNotConfigured", {"x": 7})
    assert not isinstance(err, FederationTaskNotConfigured)


def test_generator_refuses_overloaded_errors() -> None:
    item = {"type": "error", "name": "E", "inputs": []}
    overloaded = dict(ARTIFACT, abi=[item, dict(item, inputs=[{"name": "x", "type": "uint256"}])])
    with pytest.raises(RevertGenerationError, match="overloaded"):
        revertgen.render(overloaded)


def test_generated_attribute_names_avoid_exception_attributes() -> None:
    item = {"type": "error", "name": "E", "inputs": [{"name": "args", "type": "uint256"}, {"name": "class", "type": "bool"}]}
    namespace: dict[str, object] = {}
    exec(compile(revertgen.render(dict(ARTIFACT, abi=[item])), "<generated>", "exec"), namespace)  # noqa: S102
    err = namespace["E"](args_=1, class_=True)  # type: ignore[operator]
    assert (err.args_, err.class_, err.error_args) == (1, True, {"args": 1, "class": True})
