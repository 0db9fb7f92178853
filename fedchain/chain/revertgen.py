"""Generates :mod:`fedchain.reverts` from the deployed contracts' artifacts: one typed exception per custom error.

The contracts are those of :data:`REVERTS_CONTRACTS`: the ``Federation``, its incentives (deposits and the reward
token) and its governance stack (the
OpenZeppelin Governor, TimelockController and the ERC-721 membership token), so that a revert of any of
them - and one that bubbles up through the timelock from the Federation - decodes to its typed class.
An error declared by several of them (``AccessControlUnauthorizedAccount`` of the Federation and the
timelock) is one class, provided its signature and argument names agree; otherwise the generator refuses.

:func:`render` is a pure function of the artifacts (their ABIs, their NatSpec ``userdoc``/``devdoc`` and
their common ``sourceHash``), so ``fedchain contracts build`` can rewrite the module and ``--check`` can
tell when the committed one no longer matches the committed artifacts, exactly like the artifacts
themselves (:func:`fedchain.chain.compiler.build` calls :func:`compare` and :func:`write`).

Each generated class is named like the Solidity error, derives from
:class:`fedchain.errors.ContractRevertError` (so ``error_name``, ``error_args`` and the exit code stay
as they are) and carries one typed attribute per argument, in snake case. The generated module
imports nothing from fedchain but :mod:`fedchain.errors`.
"""

from __future__ import annotations

import keyword
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fedchain.codec.abi import keccak
from fedchain.errors import RevertGenerationError

REVERTS_CONTRACTS = (
    "Federation",
    "FederationGovernor",
    "FederationTimelock",
    "FederationMembership",
    "FederationIncentives",
    "FederationRewardToken",
)
"""The contracts whose custom errors :mod:`fedchain.reverts` mirrors, in the order their docs take precedence."""
REVERTS_CONTRACT = REVERTS_CONTRACTS[0]
"""The main contract of :data:`REVERTS_CONTRACTS`."""
REVERTS_MODULE = Path("fedchain", "reverts.py")
"""Where the generated module lives, relative to the checkout root."""

_BASE = "TypedRevertError"
_WIDTH = 110
_RESERVED = frozenset(
    {"args", "error_name", "error_args", "function", "from_args", "with_traceback", "add_note", "exit_code", "revert",
     # the type names of the annotations: an attribute so named would shadow them in the class body
     "int", "str", "bytes", "bool", "list"}
)
Artifacts = Mapping[str, Any] | Sequence[Mapping[str, Any]]
"""One artifact, or several (the errors of all of them)."""
_INT_RE = re.compile(r"^u?int\d*$")
_BYTES_RE = re.compile(r"^bytes\d*$")


def _as_list(artifacts: Artifacts) -> list[Mapping[str, Any]]:
    found = [artifacts] if isinstance(artifacts, Mapping) else list(artifacts)
    if not found:
        raise RevertGenerationError("no artifact to generate typed reverts from")
    return found


def _contract(artifact: Mapping[str, Any]) -> str:
    return str(artifact.get("contractName", REVERTS_CONTRACT))


def render(artifacts: Artifacts) -> str:
    """The source of :mod:`fedchain.reverts` for ``artifacts`` (one compiled-contract artifact, or several
    of one build: every custom error of every one of them)."""
    found = _as_list(artifacts)
    contracts = [_contract(a) for a in found]
    hashes = sorted({str(a.get("sourceHash", "")) for a in found})
    if len(hashes) > 1:
        raise RevertGenerationError(f"the artifacts of {contracts} come from different builds (sourceHash {hashes})")
    # name -> (ABI item, signature, NatSpec user doc, NatSpec dev doc, declaring contracts)
    merged: dict[str, tuple[Mapping[str, Any], str, Mapping[str, Any], Mapping[str, Any], list[str]]] = {}
    for artifact, contract in zip(found, contracts, strict=True):
        items = [item for item in artifact["abi"] if item.get("type") == "error"]
        names = [str(item["name"]) for item in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise RevertGenerationError(f"{contract} declares overloaded custom errors {duplicates}")
        userdoc = artifact.get("userdoc", {}).get("errors", {})
        devdoc = artifact.get("devdoc", {}).get("errors", {})
        for item in items:
            name, sig = str(item["name"]), _signature(item)
            if name in merged:
                known, known_sig, _, _, declared = merged[name]
                if known_sig != sig or _arg_names(known) != _arg_names(item):
                    raise RevertGenerationError(
                        f"custom error {name} is {known_sig} {_arg_names(known)} in {declared[0]} but "
                        f"{sig} {_arg_names(item)} in {contract}"
                    )
                declared.append(contract)
                continue
            merged[name] = (item, sig, _first(userdoc.get(sig)), _first(devdoc.get(sig)), [contract])
    names = sorted(merged)
    parts = [_header(contracts, hashes[0], names)]
    for name in names:
        item, sig, user, dev, declared = merged[name]
        parts.append(_class(item, sig, user, dev, declared))
    parts.append(_registry(names))
    return "\n\n\n".join(parts)


def compare(path: Path, artifacts: Artifacts) -> str | None:
    """Why the module at ``path`` is not what ``artifacts`` generate (None when it is)."""
    expected = render(artifacts)
    try:
        actual = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "missing"
    except (OSError, UnicodeDecodeError) as err:
        return f"unreadable ({err})"
    if actual == expected:
        return None
    sources = ", ".join(f"{_contract(a)}.json" for a in _as_list(artifacts))
    return f"differs from what {sources} generate"


def write(path: Path, artifacts: Artifacts) -> bool:
    """Write the generated module to ``path`` unless it is already current; whether it was written."""
    if compare(path, artifacts) is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(artifacts), encoding="utf-8")
    return True


def _arg_names(item: Mapping[str, Any]) -> list[str]:
    return [str(p.get("name") or f"arg{i}") for i, p in enumerate(item.get("inputs", []))]


# ---------------------------------------------------------------- rendering


def _header(contracts: Sequence[str], source_hash: str, names: Sequence[str]) -> str:
    exported = "".join(f'    "{n}",\n' for n in ["REVERTS", "SOURCE_HASH", *sorted([_BASE, *names])])
    listed = ", ".join(f"``{c}``" for c in contracts)
    if len(contracts) == 1:
        title = f"Typed reverts of the {listed} contract: one exception class per custom error in its ABI."
        origin = f"GENERATED by ``fedchain contracts build`` from the {contracts[0]} artifact; do not edit."
    else:
        title = f"Typed reverts of the {listed} contracts: one exception class per custom error in their ABIs."
        origin = "GENERATED by ``fedchain contracts build`` from their artifacts; do not edit."
    summary = "\n".join(textwrap.wrap(title, width=_WIDTH, break_long_words=False, break_on_hyphens=False))
    doc = (
        f"A custom error of the ``{contracts[0]}`` contract, with its arguments as typed attributes."
        if len(contracts) == 1
        else "A custom error of a fedchain contract, with its arguments as typed attributes."
    )
    return f'''"""{summary}

{origin}
``fedchain contracts build --check`` fails when this module is stale.

Each class is named like the Solidity error and derives from
:class:`fedchain.errors.ContractRevertError`: ``error_name`` and ``error_args`` (keyed by the ABI
argument names) are set as for any decoded revert, and each argument is also a typed attribute
(snake case). Addresses are EIP-55 checksummed strings, ``bytes32`` values bytes, enums their
``uint8`` value. :data:`REVERTS` maps error names to classes;
:meth:`{_BASE}.from_args` builds one from ABI-named arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from fedchain.errors import ContractRevertError

__all__ = [
{exported}]

SOURCE_HASH = "{source_hash}"
"""``sourceHash`` of the artifact this module was generated from."""


class {_BASE}(ContractRevertError):
    """{doc}"""

    SIGNATURE: ClassVar[str] = ""
    """The canonical Solidity signature, e.g. ``FederationUnknownRound(uint256)``."""
    SELECTOR: ClassVar[bytes] = b""
    """The 4-byte selector that starts the revert data."""
    PARAMS: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(ABI argument name, attribute name) of each argument, in order."""
    CONTRACTS: ClassVar[tuple[str, ...]] = ()
    """The contracts that declare the error."""

    @classmethod
    def from_args(cls, args: Mapping[str, Any], *, function: str = "") -> Self:
        """The error built from its arguments keyed by their ABI names (as the revert decoder yields them)."""
        return cls(**{{attribute: args[name] for name, attribute in cls.PARAMS}}, function=function)'''


def _class(
    item: Mapping[str, Any], sig: str, user: Mapping[str, Any], dev: Mapping[str, Any], contracts: Sequence[str]
) -> str:
    name = str(item["name"])
    inputs = list(item.get("inputs", []))
    abi_names = [str(p.get("name") or f"arg{i}") for i, p in enumerate(inputs)]
    attrs = [_attribute(n) for n in abi_names]
    if len(set(attrs)) != len(attrs):
        raise RevertGenerationError(f"{name}: arguments {abi_names} collide in snake case")
    types = [_python_type(p, name) for p in inputs]
    solidity = ", ".join(f"{_solidity_type(p)} {n}".strip() for p, n in zip(inputs, abi_names, strict=True))
    selector = keccak(sig.encode())[:4].hex()
    summary = str(user.get("notice") or dev.get("details") or f"The contract reverted with {name}.")
    doc = _paragraph(summary, 4) + [""] + _paragraph(f"Solidity: ``{name}({solidity})``, selector ``0x{selector}``.", 4)
    params: Mapping[str, Any] = dev.get("params", {})
    if inputs:
        doc += ["", "    Attributes:"]
        for param, abi_name, attr in zip(inputs, abi_names, attrs, strict=True):
            text = str(params.get(abi_name) or f"The ``{abi_name}`` argument (``{_solidity_type(param)}``).")
            enum = _enum_name(param)
            if enum and f"``{enum}``" not in text:
                text = f"{text.rstrip('.')} (``{enum}``)."
            doc += _paragraph(f"{attr}: {text}", 8, hanging=4)
    lines = [f"class {name}({_BASE}):", '    """' + doc[0].lstrip(), *doc[1:], '    """', ""]
    lines += [
        f'    SIGNATURE: ClassVar[str] = "{sig}"',
        f'    SELECTOR: ClassVar[bytes] = bytes.fromhex("{selector}")',
        f"    PARAMS: ClassVar[tuple[tuple[str, str], ...]] = {_pairs(abi_names, attrs)}",
        f"    CONTRACTS: ClassVar[tuple[str, ...]] = {_strings(contracts)}",
        "",
    ]
    if inputs:
        lines += [f"    {a}: {t}" for a, t in zip(attrs, types, strict=True)] + [""]
    signature = ", ".join(f"{a}: {t}" for a, t in zip(attrs, types, strict=True))
    arguments = "{" + ", ".join(f'"{n}": {a}' for n, a in zip(abi_names, attrs, strict=True)) + "}"
    lines.append(f'    def __init__(self{", " + signature if signature else ""}, *, function: str = "") -> None:')
    call = f'"{name}", {arguments}, function=function'
    if len(call) + len("        super().__init__()") <= _WIDTH:
        lines.append(f"        super().__init__({call})")
    else:
        lines += ["        super().__init__(", f"            {call}", "        )"]
    lines += [f"        self.{a} = {a}" for a in attrs]
    return "\n".join(lines)


def _registry(names: Sequence[str]) -> str:
    body = "".join(f'    "{n}": {n},\n' for n in names)
    return (
        "REVERTS: dict[str, type[ContractRevertError]] = {\n"
        + body
        + "}\n"
        + '"""Every custom error of the contract by name; each value is a :class:`'
        + _BASE
        + '` subclass."""\n'
    )


def _pairs(abi_names: Sequence[str], attrs: Sequence[str]) -> str:
    """The ``PARAMS`` tuple literal: ``()``, ``(("a", "a"),)`` or ``(("a", "a"), ("bC", "b_c"))``."""
    items = [f'("{n}", "{a}")' for n, a in zip(abi_names, attrs, strict=True)]
    if len(items) == 1:
        return f"({items[0]},)"
    return "(" + ", ".join(items) + ")"


def _strings(values: Sequence[str]) -> str:
    """A tuple literal of strings: ``("a",)`` or ``("a", "b")``."""
    items = [f'"{v}"' for v in values]
    return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"


def _paragraph(text: str, indent: int, hanging: int = 0) -> list[str]:
    words = " ".join(text.split())
    return textwrap.wrap(
        words,
        width=_WIDTH,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + hanging),
        break_long_words=False,
        break_on_hyphens=False,
    ) or [" " * indent]


def _first(entries: Any) -> Mapping[str, Any]:
    if isinstance(entries, list) and entries and isinstance(entries[0], Mapping):
        return entries[0]
    return {}


def _attribute(abi_name: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", abi_name).lower().strip("_") or "arg"
    if snake in _RESERVED or keyword.iskeyword(snake) or not snake.isidentifier():
        snake += "_"
    return snake


def _canonical(param: Mapping[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in param.get("components", [])) + ")" + kind[len("tuple") :]
    return kind


def _signature(item: Mapping[str, Any]) -> str:
    return f"{item['name']}({','.join(_canonical(p) for p in item.get('inputs', []))})"


def _solidity_type(param: Mapping[str, Any]) -> str:
    internal = str(param.get("internalType") or param["type"])
    for prefix in ("enum ", "struct ", "contract "):
        if internal.startswith(prefix):
            return internal[len(prefix) :]
    return internal


def _enum_name(param: Mapping[str, Any]) -> str:
    internal = str(param.get("internalType") or "")
    return internal[len("enum ") :] if internal.startswith("enum ") else ""


def _python_type(param: Mapping[str, Any], error: str) -> str:
    kind = str(param["type"])
    if kind.endswith("]"):
        inner = dict(param, type=kind[: kind.rindex("[")])
        return f"list[{_python_type(inner, error)}]"
    if _INT_RE.match(kind):
        return "int"
    if _BYTES_RE.match(kind):
        return "bytes"
    if kind in ("address", "string"):
        return "str"
    if kind == "bool":
        return "bool"
    raise RevertGenerationError(f"{error}: argument type {kind} is not supported")
