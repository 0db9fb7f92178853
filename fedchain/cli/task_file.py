"""The task as a file: ``task.toml``, read by ``fedchain admin configure-task --file`` and written by ``fedchain init``.

Every key is checked before anything is built: an unknown section or key, a value of the wrong type or a missing
required key is a ConfigError naming the file, the section and the key. The document is then built through the same
code as ``configure-task``'s options (:func:`fedchain.cli.admin.task_document`), so a file and the equivalent options
give the same task document, byte for byte.

Sections (see :data:`TASK_FILE_KEYS`): ``[task]`` (``dataset`` or ``schema``, ``seed``), ``[model]`` (``arch`` and
its layers, or ``file`` + ``factory`` + ``[model.params]``), ``[strategy]`` (``name``, local training, ``robust``,
``[strategy.params]``), ``[rounds]`` (``min_updates`` and the durations), and the optional ``[privacy]``,
``[secagg]``, ``[signed_commits]`` and ``[rewards]``. Paths are relative to the task file's folder.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.errors import ConfigError, DataSchemaError
from fedchain.types import Cid, Digest

if TYPE_CHECKING:
    from fedchain.fl.models import ModelSpec
    from fedchain.fl.schema import DataSchema
    from fedchain.protocol.task import TaskDocument

# A key's kind: "str", "int", "number" (int or float), "int_list", "str_list", "numbers" (a table of numbers),
# "scalars" (a table of strings, numbers and booleans).
TASK_FILE_KEYS: dict[str, dict[str, str]] = {
    "task": {"dataset": "str", "schema": "str", "seed": "int"},
    "model": {"arch": "str", "hidden": "int_list", "channels": "int_list", "kernel_size": "int", "file": "str",
              "factory": "str", "params": "scalars"},
    "strategy": {"name": "str", "local_epochs": "int", "batch_size": "int", "lr": "number", "robust": "str_list",
                 "params": "numbers"},
    "rounds": {"min_updates": "int", "commit_duration": "int", "max_commit_duration": "int", "reveal_duration": "int"},
    "privacy": {"mechanism": "str", "epsilon_budget": "number", "delta": "number", "clip": "number",
                "noise_multiplier": "number", "sample_rate": "number", "accountant": "str", "min_clients": "int",
                "rounds": "int"},
    "secagg": {"clip": "number", "degree": "int", "max_summands": "int", "phase": "int"},
    "signed_commits": {"inbox": "str", "escape_duration": "int"},
    "rewards": {"rule": "str", "validation": "str", "params": "scalars"},
}
"""Every section of a task file, its keys and their kinds."""

REQUIRED_KEYS: dict[str, tuple[str, ...]] = {"privacy": ("mechanism", "epsilon_budget"), "rewards": ("rule",),
                                             "signed_commits": ("inbox",)}
"""The keys a section needs when it is present (``[task]`` needs ``dataset`` or ``schema``)."""

_KIND_NAMES = {"str": "a string", "int": "an integer", "number": "a number", "int_list": "a list of integers",
               "str_list": "a list of strings", "numbers": "a table of numbers",
               "scalars": "a table of strings, numbers and booleans"}


@dataclass(frozen=True)
class TaskFile:
    """A task file read and built: the task document and what must be stored with it."""

    path: Path
    doc: TaskDocument  # without its rewards (they need the stored validation set): see :meth:`rewards`
    model_source: bytes | None  # a custom model's Python source, stored as a blob before the task is published
    rewards_rule: str | None
    reward_params: tuple[str, ...]  # KEY=VALUE, as ``--reward-param`` takes them
    validation: Path | None


def _is_kind(value: Any, kind: str) -> bool:
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return number(value)
    if kind == "int_list":
        return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "numbers":
        return isinstance(value, dict) and all(number(v) for v in value.values())
    return isinstance(value, dict) and all(isinstance(v, (str, bool)) or number(v) for v in value.values())


def check_task_file(data: Mapping[str, Any], path: Path) -> None:
    """ConfigError naming ``path``, the section and the key for the first unknown, mistyped or missing key."""
    for section, table in data.items():
        if section not in TASK_FILE_KEYS:
            raise ConfigError(f"task file {path}: unknown section [{section}]; expected one of "
                              f"{', '.join(f'[{s}]' for s in TASK_FILE_KEYS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"task file {path}: {section} must be a section ([{section}]), got {table!r}")
        keys = TASK_FILE_KEYS[section]
        for key, value in table.items():
            if key not in keys:
                raise ConfigError(f"task file {path}: unknown key {key!r} in [{section}]; expected one of "
                                  f"{', '.join(keys)}")
            if not _is_kind(value, keys[key]):
                raise ConfigError(f"task file {path}: [{section}] {key} must be {_KIND_NAMES[keys[key]]}, "
                                  f"got {value!r}")
        for key in REQUIRED_KEYS.get(section, ()):
            if key not in table:
                raise ConfigError(f"task file {path}: [{section}] needs {key}")
    task = data.get("task", {})
    if ("dataset" in task) == ("schema" in task):
        raise ConfigError(f"task file {path}: [task] needs exactly one of dataset (a bundled dataset) and schema "
                          f"(a schema file), got {'both' if 'dataset' in task else 'neither'}")
    model = data.get("model", {})
    if "file" in model:
        if "arch" in model or any(k in model for k in ("hidden", "channels", "kernel_size")):
            raise ConfigError(f"task file {path}: [model] file (a custom model) takes no arch, hidden, channels or "
                              f"kernel_size")
    elif "factory" in model or "params" in model:
        raise ConfigError(f"task file {path}: [model] factory and params only with file (a custom model)")
    elif any(k in model for k in ("hidden", "channels", "kernel_size")) and "arch" not in model:
        raise ConfigError(f"task file {path}: [model] hidden, channels and kernel_size need arch")


def read_task_file(path: Path) -> dict[str, Any]:
    """The task file's TOML, checked by :func:`check_task_file`; ConfigError when unreadable or not TOML."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"task file {path} cannot be read: {err}") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"task file {path} is not valid TOML: {err}") from err
    check_task_file(data, path)
    return data


def _relative(path: Path, name: str) -> Path:
    candidate = Path(name).expanduser()
    return candidate if candidate.is_absolute() else path.parent / candidate


def _text_value(value: Any) -> str:
    """A TOML value as the KEY=VALUE text of the options path reads it back (numbers, booleans, strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def load_schema_file(path: Path, task_file: Path) -> DataSchema:
    """The data schema file ``[task] schema`` names; DataSchemaError naming both files when it is not one."""
    from fedchain.fl.schema import DataSchema

    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"task file {task_file}: [task] schema {path} cannot be read: {err}") from err
    try:
        return DataSchema.from_json(data)
    except DataSchemaError as err:
        raise DataSchemaError(f"task file {task_file}: [task] schema {path}: {err}") from err


def _model(model: Mapping[str, Any], path: Path) -> tuple[Callable[[DataSchema], ModelSpec] | None, dict[str, bytes]]:
    """The model of ``[model]`` for the task's schema (None: the data's default), and where a custom model's source
    is kept once the spec is built (key ``source``)."""
    from fedchain.fl.models import ModelSpec

    if "file" in model:
        from fedchain.fl.models import custom_model_spec
        from fedchain.storage.cid import compute_cid

        source_path = _relative(path, str(model["file"]))
        if not source_path.is_file():
            raise ConfigError(f"task file {path}: [model] file {source_path} is not a file")
        factory = str(model.get("factory", "build"))
        params = dict(model.get("params", {}))
        kept: dict[str, bytes] = {}

        def custom_spec(schema: DataSchema) -> ModelSpec:
            # The spec names the source's CID, computed here: the blob is stored only once the whole task is valid.
            cid = compute_cid(source_path.read_bytes())
            spec, source = custom_model_spec(source_path, factory, params, tuple(schema.feature_shape),
                                             schema.num_classes, source_cid=cid)
            if compute_cid(source) != cid:
                raise ConfigError(f"[model] file {source_path} changed while it was read; try again")
            kept["source"] = source
            return spec

        return custom_spec, kept
    if not any(k in model for k in ("hidden", "channels", "kernel_size")):
        return None, {}

    def layered(schema: DataSchema) -> ModelSpec:
        return ModelSpec(arch=str(model["arch"]), input_shape=tuple(schema.feature_shape),
                         num_classes=schema.num_classes, hidden=tuple(model.get("hidden", ())),
                         channels=tuple(model.get("channels", ())), kernel_size=int(model.get("kernel_size", 3)))

    return layered, {}


def build_task_file(path: Path) -> TaskFile:
    """Read, check and build the task file at ``path`` (nothing is stored); ConfigError naming what is wrong."""
    from fedchain.cli.admin import rewards_config, task_document
    from fedchain.cli.options import secagg_config, signed_commits_config
    from fedchain.sim.config import PrivacyRequest

    data = read_task_file(path)
    task, model, strategy = data.get("task", {}), data.get("model", {}), data.get("strategy", {})
    rounds, privacy, secagg, rewards = (data.get(s) for s in ("rounds", "privacy", "secagg", "rewards"))
    rounds = rounds or {}
    schema = None if "schema" not in task else load_schema_file(_relative(path, str(task["schema"])), path)
    model_of, kept = _model(model, path)
    request: PrivacyRequest | None = None
    dp_rounds: int | None = None
    if privacy is not None:
        mechanism = str(privacy["mechanism"])
        if mechanism not in ("dpsgd", "client"):
            raise ConfigError(f"task file {path}: [privacy] mechanism must be dpsgd or client, got {mechanism!r}")
        if mechanism == "dpsgd" and "sample_rate" not in privacy:
            raise ConfigError(f"task file {path}: [privacy] mechanism dpsgd needs sample_rate (the Poisson sampling "
                              "rate of each participant's records)")
        if "noise_multiplier" not in privacy and "rounds" not in privacy:
            raise ConfigError(f"task file {path}: [privacy] needs noise_multiplier, or rounds R to calibrate it so "
                              "that R rounds fit the budget")
        defaults = PrivacyRequest(mechanism, float(privacy["epsilon_budget"]))
        request = replace(defaults, delta=float(privacy.get("delta", defaults.delta)),
                          clip=float(privacy.get("clip", defaults.clip)),
                          noise_multiplier=None if "noise_multiplier" not in privacy else float(privacy["noise_multiplier"]),
                          sample_rate=None if "sample_rate" not in privacy else float(privacy["sample_rate"]),
                          accountant=str(privacy.get("accountant", defaults.accountant)),
                          min_clients=privacy.get("min_clients"))
        dp_rounds = privacy.get("rounds")
    robust = strategy.get("robust")
    try:
        secagg_cfg = None if secagg is None else secagg_config(
            True, float(secagg.get("clip", 5.0)), secagg.get("degree"), int(secagg.get("max_summands", 1024)),
            int(secagg.get("phase", 120)))
        if rewards is not None:
            rewards_config(str(rewards["rule"]), _pairs(rewards.get("params", {})),
                           None if "validation" not in rewards else (Digest(bytes(32)), Cid("x")))
        doc = task_document(
            str(task.get("dataset", "")), None if "arch" not in model else str(model["arch"]),
            str(strategy.get("name", "fedavg")), _pairs(strategy.get("params", {})),
            None if robust is None else ("+".join(robust) if robust else "none"),
            int(strategy.get("local_epochs", 1)), int(strategy.get("batch_size", 32)), float(strategy.get("lr", 0.05)),
            int(task.get("seed", 0)), int(rounds.get("min_updates", 1)), int(rounds.get("commit_duration", 300)),
            int(rounds.get("max_commit_duration", 86_400)), int(rounds.get("reveal_duration", 0)), privacy=request,
            dp_rounds=dp_rounds, secagg=secagg_cfg, schema=schema, model=model_of,
        )
        signed = data.get("signed_commits")
        if signed is not None:
            doc = replace(doc, signed_commits=signed_commits_config(True, str(signed["inbox"]),
                                                                    int(signed.get("escape_duration", 60))))
    except DataSchemaError as err:
        raise DataSchemaError(f"task file {path}: {err}") from err
    except ConfigError as err:
        raise ConfigError(f"task file {path}: {err}") from err
    validation = None
    if rewards is not None and "validation" in rewards:
        validation = _relative(path, str(rewards["validation"]))
        if not validation.is_file():
            raise ConfigError(f"task file {path}: [rewards] validation {validation} is not a file")
    return TaskFile(path=path, doc=doc, model_source=kept.get("source"),
                    rewards_rule=None if rewards is None else str(rewards["rule"]),
                    reward_params=_pairs((rewards or {}).get("params", {})), validation=validation)


def _pairs(table: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(f"{key}={_text_value(value)}" for key, value in table.items())


