import importlib
import inspect
import pkgutil

import fedchain
import fedchain.errors as errors
from fedchain.errors import ContractRevertError, ExitCode, FedchainError


def _error_classes() -> list[type[FedchainError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, FedchainError)]


def test_every_error_descends_from_the_root_and_has_an_exit_code() -> None:
    for cls in _error_classes():
        assert isinstance(cls.exit_code, ExitCode), cls


def test_each_family_has_its_own_exit_code() -> None:
    # a class that declares no code of its own (CompilerError, MerkleError, ...) exits with its family's
    codes = [cls.exit_code for cls in _error_classes() if "exit_code" in vars(cls)]
    assert len(codes) == len(set(codes)), "two error classes declare the same exit code"
    assert all(code not in (ExitCode.OK, ExitCode.USAGE) for code in codes)


def test_every_error_class_is_defined_in_errors_py() -> None:
    # fedchain.reverts is generated from the contract's ABI and refines ContractRevertError
    modules = [m.name for m in pkgutil.walk_packages(fedchain.__path__, "fedchain.") if m.name != "fedchain.__main__"]
    elsewhere = [
        f"{name}.{cls.__name__}"
        for name in modules
        if name not in ("fedchain.errors", "fedchain.reverts")
        for cls in vars(importlib.import_module(name)).values()
        if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == name
    ]
    assert elsewhere == []


def test_exit_code_values_are_unique() -> None:
    values = [member.value for member in ExitCode]
    assert len(values) == len(set(values))


def test_contract_revert_error_renders_name_and_arguments() -> None:
    err = ContractRevertError("FederationDuplicateCommit", {"roundId": 3, "participant": "0xAb"}, function="commitUpdate")
    assert str(err) == "commitUpdate: contract reverted with FederationDuplicateCommit(roundId=3, participant=0xAb)"
    assert err.error_args == {"roundId": 3, "participant": "0xAb"}
    assert ContractRevertError("X", {"d": b"\x01\x02"}).args[0].endswith("X(d=0x0102)")
