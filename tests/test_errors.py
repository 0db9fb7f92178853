import inspect

import fedchain.errors as errors
from fedchain.errors import ContractRevertError, ExitCode, FedchainError


def _error_classes() -> list[type[FedchainError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, FedchainError)]


def test_every_error_descends_from_the_root_and_has_an_exit_code() -> None:
    for cls in _error_classes():
        assert isinstance(cls.exit_code, ExitCode), cls


def test_each_family_has_its_own_exit_code() -> None:
    codes = [cls.exit_code for cls in _error_classes()]
    assert len(codes) == len(set(codes)), "two error classes share an exit code"
    assert all(code not in (ExitCode.OK, ExitCode.USAGE) for code in codes)


def test_exit_code_values_are_unique() -> None:
    values = [member.value for member in ExitCode]
    assert len(values) == len(set(values))


def test_contract_revert_error_renders_name_and_arguments() -> None:
    err = ContractRevertError("FederationDuplicateCommit", {"roundId": 3, "participant": "0xAb"}, function="commitUpdate")
    assert str(err) == "commitUpdate: contract reverted with FederationDuplicateCommit(roundId=3, participant=0xAb)"
    assert err.error_args == {"roundId": 3, "participant": "0xAb"}
    assert ContractRevertError("X", {"d": b"\x01\x02"}).args[0].endswith("X(d=0x0102)")
