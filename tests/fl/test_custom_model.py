"""Bring your own model: a task's model defined in a Python file (arch ``custom``), validated,
covered by the model-spec digest, built deterministically and only from a registered source."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ConfigError, ModelTrustError
from fedchain.fl import client
from fedchain.fl.models import (
    ModelSpec,
    build_model,
    custom_model_spec,
    evaluate,
    get_weights,
    is_model_source_registered,
    model_source_digest,
    set_weights,
)
from fedchain.fl.records import ClientConfig
from fedchain.types import Address, Digest, RoundId, digest_hex

torch.set_num_threads(1)

MLP = '''
import torch
from torch import nn

# {tag}


def build(hidden=8, depth=1):
    layers = [nn.Flatten()]
    width = 6
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, 3))
    return nn.Sequential(*layers)
'''


def model_file(tmp_path: Path, text: str | None = None, name: str = "model.py") -> Path:
    path = tmp_path / name
    path.write_text(MLP.format(tag=tmp_path.name) if text is None else text, encoding="utf-8")
    return path


def spec_of(path: Path, **params: object) -> ModelSpec:
    return custom_model_spec(path, "build", params or {"hidden": 8}, (6,), 3)[0]


def test_same_seed_builds_bit_identical_parameters(tmp_path: Path) -> None:
    spec = spec_of(model_file(tmp_path))
    a, b = get_weights(build_model(spec, 7)), get_weights(build_model(spec, 7))
    assert list(a) == list(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)
    other = get_weights(build_model(spec, 8))
    assert any(not np.array_equal(a[k], other[k]) for k in a)


def test_each_build_is_a_fresh_module_and_leaves_the_global_rngs_alone(tmp_path: Path) -> None:
    spec = spec_of(model_file(tmp_path))
    torch.manual_seed(5)
    np.random.seed(5)
    expected = (torch.rand(2), np.random.rand(2))
    torch.manual_seed(5)
    np.random.seed(5)
    first, second = build_model(spec, 1), build_model(spec, 1)
    assert first is not second and type(first) is torch.nn.Sequential
    assert first[1].weight.data_ptr() != second[1].weight.data_ptr()
    assert torch.equal(torch.rand(2), expected[0]) and np.array_equal(np.random.rand(2), expected[1])
    assert not [name for name in sys.modules if name.startswith("fedchain_custom_model")]


CLASS_MODEL = '''
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Sizes:
    hidden: int
    classes: int = 3


class Net(nn.Module):
    def __init__(self, sizes: Sizes) -> None:
        super().__init__()
        self.body = nn.Linear(6, sizes.hidden)
        self.norm = nn.LayerNorm(sizes.hidden)
        self.head = nn.Linear(sizes.hidden, sizes.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.body(x.flatten(1)))))


def make(hidden: int = 4, scale: float = 1.0, names: list[str] | None = None) -> Net:
    assert names == ["a", "b"] and scale == 0.5
    return Net(Sizes(hidden))
'''


def test_a_module_class_with_annotations_and_a_dataclass_builds(tmp_path: Path) -> None:
    path = model_file(tmp_path, CLASS_MODEL)
    spec, source = custom_model_spec(path, "make", {"hidden": 5, "scale": 0.5, "names": ["a", "b"]}, (6,), 3)
    assert source == path.read_bytes() and spec.to_dict()["params"] == {"hidden": 5, "names": ["a", "b"], "scale": 0.5}
    weights = get_weights(build_model(spec, 3))
    assert sorted(weights) == ["body.bias", "body.weight", "head.bias", "head.weight", "norm.bias", "norm.weight"]
    assert weights["body.weight"].shape == (5, 6)


def test_params_reach_the_factory(tmp_path: Path) -> None:
    spec = spec_of(model_file(tmp_path), hidden=5, depth=2)
    shapes = {k: v.shape for k, v in get_weights(build_model(spec, 0)).items()}
    assert shapes["1.weight"] == (5, 6) and shapes["3.weight"] == (5, 5) and shapes["5.weight"] == (3, 5)


def test_the_source_digest_is_in_the_spec_digest(tmp_path: Path) -> None:
    path = model_file(tmp_path)
    spec = spec_of(path)
    assert spec.source_digest == digest_hex(sha256_digest(path.read_bytes()))
    assert spec.to_dict()["source_digest"] == spec.source_digest
    source = path.read_bytes()
    changed = model_file(tmp_path, source.decode().replace("# ", "#  ", 1), name="changed.py")
    assert len(changed.read_bytes()) == len(source) + 1
    assert spec_of(changed).digest() != spec.digest()
    for field, value in (("factory", "build2"), ("params", {"hidden": 9}), ("source_cid", "bafkother")):
        assert dataclasses.replace(spec, **{field: value}).digest() != spec.digest(), field


def test_json_round_trip(tmp_path: Path) -> None:
    spec = spec_of(model_file(tmp_path), hidden=4, depth=1)
    spec = dataclasses.replace(spec, source_cid="bafkreiabc")
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec and again.digest() == spec.digest() and hash(again) == hash(spec)
    assert spec.to_dict()["params"] == {"depth": 1, "hidden": 4}


def test_specs_pickle_copy_and_convert_like_any_dataclass(tmp_path: Path) -> None:
    for spec in (spec_of(model_file(tmp_path), hidden=4), ModelSpec("mlp", (6,), 3, hidden=(4,))):
        assert pickle.loads(pickle.dumps(spec)) == spec and copy.deepcopy(spec) == spec
        assert dataclasses.asdict(spec)["params"] == dict(spec.params)


def test_builtin_spec_digests_are_unchanged() -> None:
    pinned = {
        ModelSpec("logreg", (30,), 2): "c625c01a3929ff8c9dca9f0a58d634afb7350ad3d0b66c55ad3db55519b82eee",
        ModelSpec("mlp", (61,), 2, hidden=(32, 16)): "bf3ce8ecce5ea9761c259f4866f4298e15f52655dffdc41dd59eb26bb7715889",
        ModelSpec("cnn", (1, 8, 8), 10, channels=(8, 16), hidden=(32,)):
            "09919be1f9cd7a846c98009918176fe4c7ff7d187598b0bd739efca8ff95b400",
    }
    for spec, digest in pinned.items():
        assert spec.digest().hex() == digest and "source_digest" not in spec.to_dict()


def test_an_unregistered_source_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n" + MLP.format(tag="x")).encode()
    digest = model_source_digest(source)
    spec = ModelSpec("custom", (6,), 3, source_digest=digest, source_cid="bafkreiexample", factory="build")
    assert not is_model_source_registered(digest)
    with pytest.raises(ModelTrustError, match=f"not one you trust.*fedchain store get bafkreiexample.*--trust-model {digest}"):
        build_model(spec, 0)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, factory, match",
    [
        ("def build(:\n    pass\n", "build", r"does not compile \(line 1\)"),
        ("import torch\n", "build", "defines no factory 'build'"),
        ("build = 3\n", "build", "is a int, not a function"),
        ("raise RuntimeError('boom')\n", "build", "fails at import: RuntimeError: boom"),
        ("def build(hidden=8):\n    return 3\n", "build", "returned a int, not a torch.nn.Module"),
        ("from torch import nn\ndef build(hidden=8):\n    return nn.Linear(6, 4)\n", "build",
         r"forward maps a batch of shape \(2, 6\) to \(2, 4\), not \(2, 3\)"),
        ("from torch import nn\ndef build(hidden=8):\n    return nn.Linear(5, 3)\n", "build",
         r"forward on a batch of shape \(2, 6\) fails: RuntimeError"),
        ("from torch import nn\ndef build():\n    return nn.Linear(6, 3)\n", "build",
         r"build\(\*\*\{'hidden': 8\}\) failed: TypeError"),
        ("from torch import nn\ndef build(hidden=8):\n    return nn.ReLU()\n", "build", "without parameters"),
        ("import os, torch\nfrom torch import nn\ndef build(hidden=8):\n    m = nn.Linear(6, 3)\n"
         "    with torch.no_grad():\n        m.bias.add_(int.from_bytes(os.urandom(4), 'big'))\n    return m\n", "build",
         "two builds .* give different parameters"),
        (MLP.format(tag=""), "not an identifier", "factory must name a function"),
    ],
)
def test_a_bad_model_file_is_a_config_error_naming_it(tmp_path: Path, text: str, factory: str, match: str) -> None:
    path = model_file(tmp_path, text, name="bad_model.py")
    with pytest.raises(ConfigError, match=match) as caught:
        custom_model_spec(path, factory, {"hidden": 8}, (6,), 3)
    assert str(path) in str(caught.value)
    assert not is_model_source_registered(model_source_digest(path.read_bytes()))


def test_a_missing_file_and_bad_params_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model file .*nowhere.py cannot be read"):
        custom_model_spec(tmp_path / "nowhere.py", "build", {}, (6,), 3)
    path = model_file(tmp_path)
    with pytest.raises(ConfigError, match=r"model\.py: invalid model spec: param 'hidden' must be a JSON scalar"):
        custom_model_spec(path, "build", {"hidden": {"nested": 1}}, (6,), 3)
    with pytest.raises(ConfigError, match="num_classes"):
        custom_model_spec(path, "build", {}, (6,), 1)


def test_builtin_and_custom_fields_do_not_mix() -> None:
    with pytest.raises(ConfigError, match="mlp takes no source_digest"):
        ModelSpec("mlp", (6,), 3, hidden=(4,), factory="build")
    with pytest.raises(ConfigError, match="custom takes no hidden"):
        ModelSpec("custom", (6,), 3, hidden=(4,), source_digest="0x" + "11" * 32, factory="build")
    with pytest.raises(ConfigError, match="source_digest must be the SHA-256"):
        ModelSpec("custom", (6,), 3, source_digest="0x1234", factory="build")
    with pytest.raises(ConfigError, match=r"missing keys \['factory', 'source_cid', 'source_digest'\]"):
        ModelSpec.from_dict({"arch": "custom", "input_shape": [6], "num_classes": 3})


def test_one_round_of_local_training_on_a_custom_model(tmp_path: Path) -> None:
    spec = spec_of(model_file(tmp_path), hidden=16)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 6)).astype(np.float32)
    y = np.argmax(x[:, :3], axis=1).astype(np.int64)
    start = get_weights(build_model(spec, 0))
    update, _, metrics = client.train_local(
        spec, start, x, y, ClientConfig("fedavg", local_epochs=15, batch_size=32, lr=0.1), seed=1,
        participant=Address("0x" + "ab" * 20), round_id=RoundId(1), base_model_digest=Digest(b"\x44" * 32),
    )
    assert update.num_samples == 240 and metrics["steps"] > 0
    model = build_model(spec, 0)
    set_weights(model, {k: start[k] + update.tensors[k] for k in start})
    assert evaluate(model, x, y)["accuracy"] > 0.8
