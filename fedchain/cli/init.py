"""``fedchain init DIR``: scaffold a consortium project (a task file, its data schema, a model file, a README).

The files are a starting point the consortium edits and agrees on: ``task.toml`` is what ``fedchain admin
configure-task --file task.toml`` publishes (format: :mod:`fedchain.cli.task_file`), ``schema.json`` the data schema
every site's data must match, ``model.py`` a small ``torch.nn.Module`` factory that fits the schema's features and
classes (used once ``[model] file = "model.py"`` is set in the task file), and ``README.md`` the next commands."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fedchain.cli.options import emit, json_option
from fedchain.errors import DataSchemaError
from fedchain.types import digest_hex

if TYPE_CHECKING:
    from fedchain.fl.models import ModelSpec
    from fedchain.fl.schema import DataSchema

PROJECT_FILES = ("task.toml", "schema.json", "model.py", "README.md")
"""The files ``fedchain init`` writes, in that order."""


def _toml_list(values: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


COMMENT_COLUMN = 40
"""Where the scaffolded task file's trailing comments start."""


def _align_comments(text: str) -> str:
    """Start every trailing ``# comment`` of a key line at :data:`COMMENT_COLUMN` (or one space after the key)."""
    lines = []
    for line in text.splitlines():
        code, sep, comment = line.partition(" # ")
        if sep and code.strip() and not code.lstrip().startswith("#"):
            line = f"{code.rstrip():<{COMMENT_COLUMN - 1}} # {comment.strip()}"
        elif sep and code.lstrip().startswith("# ") and ("=" in code or "[" in code):  # a commented-out key with its comment
            line = f"{code.rstrip():<{COMMENT_COLUMN - 1}} # {comment.strip()}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def render_task_toml(*, dataset: str | None, schema_file: str | None, schema: DataSchema, spec: ModelSpec) -> str:
    """The scaffolded ``task.toml``: the task on ``dataset`` (a bundled one) or ``schema_file``, with ``spec``."""
    data_line = (f'dataset = "{dataset}" # a bundled dataset; or: schema = "schema.json"'
                 if dataset is not None else
                 f'schema = "{schema_file}" # the consortium\'s data schema (fedchain data schema infer)')
    layers = [] if spec.arch == "logreg" else [f"hidden = {_toml_list(spec.hidden)}"]
    if spec.arch == "cnn":
        layers += [f"channels = {_toml_list(spec.channels)}", f"kernel_size = {spec.kernel_size}"]
    layer_lines = "".join(line + "\n" for line in layers)
    return _align_comments(f"""\
# The federation's task: `fedchain admin configure-task --file task.toml` publishes it.
# Paths are relative to this file. `fedchain admin task` shows the task on chain, decoded.

[task]
{data_line}
seed = 0                                 # seeds the initial model

[model]
arch = "{spec.arch}" # logreg, mlp or cnn
{layer_lines}
# A model of your own instead (participants must trust its digest: --trust-model):
# file = "model.py"
# factory = "build"
# [model.params]                         # keyword arguments of the factory (strings, numbers, booleans)
# hidden = 64

[strategy]
name = "fedavg"                          # fedavg, fedprox, scaffold, fednova, qfedavg or fedadam
local_epochs = 1
batch_size = 32
lr = 0.05
robust = ["norm_clip:max_norm=100.0,reject=true"] # applied in order; [] for none; e.g. "multi_krum:f=1"

[strategy.params]
max_weight_share = 0.3                   # the cap on any participant's share of the weight
# mu = 0.01                              # fedprox

[rounds]
min_updates = 1                          # included updates a round needs
commit_duration = 300                    # seconds participants have to commit
max_commit_duration = 86400              # the longest commit phase a round may be opened with
reveal_duration = 0                      # commit-reveal: seconds of the reveal phase (0: commit in the open)

# Differential privacy (the policy and each participant's budget go on chain):
# [privacy]
# mechanism = "client"                   # client (client-level) or dpsgd (record-level, needs sample_rate)
# epsilon_budget = 8.0
# delta = 1e-5
# clip = 1.0
# rounds = 10                            # calibrate the noise so that 10 rounds fit; or noise_multiplier = 1.1
# accountant = "rdp"                     # rdp, prv (dpsgd) or pld (client)
# min_clients = 2
# sample_rate = 0.05                     # dpsgd

# Secure aggregation (the aggregator sees only the sum; needs fedavg or fedprox and robust = []):
# [secagg]
# clip = 5.0
# max_summands = 1024
# phase = 120                            # seconds of the advertise and of the unmask phase
# degree = 8                             # SecAgg+ neighbour graph (default: complete up to 33 participants)

# Rewards (scored per round):
# [rewards]
# rule = "samples"                       # samples, loo or shapley (loo and shapley need validation)
# validation = "validation.npz"
# [rewards.params]
# permutations = 200
""")


def render_model_py(schema: DataSchema) -> str:
    """The scaffolded ``model.py``: a small MLP factory whose defaults fit ``schema``'s features and classes."""
    shape = tuple(int(d) for d in schema.feature_shape)
    features = math.prod(shape)
    return f'''\
"""The consortium's model: a torch.nn.Module factory the task file can name.

Set in task.toml:

    [model]
    file = "model.py"
    factory = "build"
    [model.params]      # keyword arguments of build() (strings, numbers, booleans)
    hidden = 64

Every participant builds the same model from this file: the file's SHA-256 digest is part of the task's model-spec
digest on chain, and a participant trains it only once it trusts that digest (--trust-model DIGEST). The model takes
a batch of samples shaped {shape} (the data schema "{schema.dataset}") and returns one logit per class
({schema.num_classes} classes: {", ".join(schema.label_names)}). Keep it deterministic: no randomness beyond the
parameter initialisation, which fedchain seeds.
"""

from torch import nn


def build(in_features: int = {features}, num_classes: int = {schema.num_classes}, hidden: int = 64) -> nn.Module:
    """Flatten, one hidden ReLU layer of ``hidden`` units, a linear head of ``num_classes`` logits."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )
'''


def render_readme(name: str, *, dataset: str | None, schema: DataSchema) -> str:
    """The scaffolded ``README.md``: what the files are and the next commands."""
    data_steps = (
        f"Each participant writes its share of `{dataset}`, e.g.\n`fedchain data partition {dataset} --clients 3 "
        "--scheme iid --out data/` (a demo split), or brings its own file matching `schema.json`."
        if dataset is not None else
        "Each participant validates and prepares its own table against the agreed schema:\n"
        "`fedchain data import hospital.csv --schema schema.json --out site.npz`."
    )
    return f"""\
# {name}: a fedchain consortium project

| file | what it is |
|---|---|
| `task.toml` | the federation's task: data, model, strategy, robust rules, rounds, privacy, secure aggregation |
| `schema.json` | the data schema `{schema.dataset}` (digest `{digest_hex(schema.digest())}`) every site's data must match |
| `model.py` | a model of your own (a `torch.nn.Module` factory), used once `[model] file = "model.py"` is set |

## Next commands

1. Agree on `task.toml` (and `schema.json`, `model.py`) within the consortium.
2. The operator starts a chain and deploys the federation: `fedchain devnet start`, `fedchain devnet deploy`.
3. The consortium admin publishes the task and checks it:
   `fedchain admin configure-task --file task.toml`, then `fedchain admin task`.
4. Participants register (`fedchain participant register --org NAME --samples N --data FILE`) and the admin admits
   them (`fedchain admin admit ADDRESS`). {data_steps}
5. With a custom model, each participant reviews `model.py` (`fedchain admin task` names its digest and CID;
   `fedchain store get CID -o model.py` fetches the published file) and passes its digest to the agent:
   `--trust-model DIGEST` (the digest is the file's SHA-256, `0x` + `sha256sum model.py`).
6. Participants run their agents (`fedchain participant run --data FILE`), the aggregator opens and finalises rounds
   (`fedchain aggregator run`), and anyone audits: `fedchain audit run`.

Run `fedchain COMMAND --help` for every option.
"""


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dataset", default=None, help="A bundled dataset the task trains on [default: breast_cancer].")
@click.option("--schema", "schema_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The consortium's data schema file (from `fedchain data schema infer`) instead of a dataset.")
@click.option("--force", is_flag=True, help="Write into a non-empty DIRECTORY, replacing the project's files there.")
@json_option
def init(directory: Path, dataset: str | None, schema_path: Path | None, force: bool, as_json: bool) -> None:
    """Scaffold a consortium project in DIRECTORY: task.toml, schema.json, model.py and README.md."""
    from fedchain.fl.models import ModelSpec, default_model_spec, model_source_digest
    from fedchain.fl.schema import DataSchema

    if dataset is not None and schema_path is not None:
        raise click.UsageError("--dataset and --schema are exclusive: a task is on a bundled dataset or on a schema")
    if directory.exists() and not directory.is_dir():
        raise click.BadParameter(f"{directory} is not a directory", param_hint="'DIRECTORY'")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise click.UsageError(f"{directory} is not empty; pass --force to write the project's files there anyway")
    if schema_path is not None:
        try:
            schema = DataSchema.from_json(schema_path.read_bytes())
        except DataSchemaError as err:
            raise DataSchemaError(f"schema file {schema_path}: {err}") from err
        spec = ModelSpec("mlp", schema.feature_shape, schema.num_classes, hidden=(64,))
    else:
        from fedchain.fl.datasets import load_dataset

        dataset = dataset or "breast_cancer"
        ds = load_dataset(dataset)
        schema, spec = ds.schema, default_model_spec(ds)
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        "task.toml": render_task_toml(dataset=dataset if schema_path is None else None,
                                      schema_file="schema.json", schema=schema, spec=spec),
        "schema.json": schema.to_json() + "\n",
        "model.py": render_model_py(schema),
        "README.md": render_readme(directory.resolve().name, dataset=dataset if schema_path is None else None,
                                   schema=schema),
    }
    for name in PROJECT_FILES:
        (directory / name).write_text(contents[name], encoding="utf-8")
    model_digest = model_source_digest(contents["model.py"].encode("utf-8"))
    payload: dict[str, Any] = {
        "directory": str(directory),
        "files": [str(directory / name) for name in PROJECT_FILES],
        "dataset": dataset if schema_path is None else None,
        "schema": {"dataset": schema.dataset, "digest": digest_hex(schema.digest())},
        "model": spec.to_dict(),
        "model_file": {"path": str(directory / "model.py"), "digest": model_digest},
    }
    emit(as_json, payload, lambda: "\n".join([
        f"created {directory}/: " + ", ".join(PROJECT_FILES),
        f"  data: {dataset if schema_path is None else 'schema ' + str(schema_path)} "
        f"(schema {schema.dataset}, digest {digest_hex(schema.digest())})",
        f"  model.py digest {model_digest} (what participants pass to --trust-model once the task names it)",
        f"  next: edit {directory / 'task.toml'}, then fedchain admin configure-task --file {directory / 'task.toml'}",
    ]))
