"""Model specs, deterministic construction, weight exchange, evaluation, a few training steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fedchain.errors import ConfigError, DataSchemaError, TrainingError
from fedchain.fl.datasets import load_dataset
from fedchain.fl.models import (
    ModelSpec,
    build_model,
    default_model_spec,
    evaluate,
    get_weights,
    num_parameters,
    set_weights,
)

torch.set_num_threads(1)

SPECS = [
    ModelSpec("logreg", (30,), 2),
    ModelSpec("mlp", (61,), 2, hidden=(32, 16)),
    ModelSpec("cnn", (1, 8, 8), 10, channels=(8, 16), hidden=(32,)),
    ModelSpec("cnn", (1, 28, 28), 10, channels=(16, 32), hidden=(64,)),
]


@pytest.fixture(scope="module")
def bc():
    return load_dataset("breast_cancer")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.arch}{s.input_shape}")
def test_same_seed_builds_bit_identical_parameters(spec):
    a, b = get_weights(build_model(spec, 7)), get_weights(build_model(spec, 7))
    assert list(a) == list(b)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.arch}{s.input_shape}")
def test_other_seed_builds_other_parameters(spec):
    a, b = get_weights(build_model(spec, 1)), get_weights(build_model(spec, 2))
    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_build_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(SPECS[3], 5)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.arch}{s.input_shape}")
def test_forward_gives_one_logit_per_class(spec):
    model = build_model(spec, 0)
    out = model(torch.zeros((4, *spec.input_shape)))
    assert out.shape == (4, spec.num_classes) and out.dtype == torch.float32


def test_spec_json_round_trip_and_digest():
    spec = SPECS[2]
    text = spec.to_json()
    assert json.loads(text)["channels"] == [8, 16]
    again = ModelSpec.from_json(text)
    assert again == spec and again.digest() == spec.digest()
    assert ModelSpec("cnn", (1, 8, 8), 10, channels=(8, 16), hidden=(33,)).digest() != spec.digest()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"arch": "resnet", "input_shape": (3,), "num_classes": 2}, "arch"),
        ({"arch": "logreg", "input_shape": (3,), "num_classes": 1}, "num_classes"),
        ({"arch": "logreg", "input_shape": (3,), "num_classes": 2, "hidden": (4,)}, "logreg takes no"),
        ({"arch": "cnn", "input_shape": (64,), "num_classes": 2, "channels": (4,)}, "channels, height, width"),
        ({"arch": "cnn", "input_shape": (1, 8, 8), "num_classes": 2, "channels": (4, 4, 4, 4)}, "below 1x1"),
        ({"arch": "cnn", "input_shape": (1, 8, 8), "num_classes": 2, "channels": (4,), "kernel_size": 2}, "odd"),
        ({"arch": "mlp", "input_shape": (0,), "num_classes": 2}, "input_shape"),
    ],
)
def test_invalid_specs_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ModelSpec(**kwargs)


def test_spec_from_json_rejects_garbage():
    with pytest.raises(ConfigError, match="not valid JSON"):
        ModelSpec.from_json("{")
    with pytest.raises(ConfigError, match="unknown keys"):
        ModelSpec.from_json('{"arch": "logreg", "input_shape": [3], "num_classes": 2, "dropout": 0.5}')


def test_build_rejects_bad_seed():
    with pytest.raises(ConfigError, match="seed"):
        build_model(SPECS[0], -1)


def test_get_weights_is_sorted_float32_copies():
    model = build_model(SPECS[1], 0)
    w = get_weights(model)
    assert list(w) == sorted(model.state_dict())
    assert all(v.dtype == np.float32 for v in w.values())
    w[next(iter(w))][...] = 99.0
    assert not np.any(get_weights(model)[next(iter(w))] == 99.0)
    assert sum(v.size for v in w.values()) == num_parameters(model)


def test_set_weights_round_trip():
    src, dst = build_model(SPECS[2], 1), build_model(SPECS[2], 2)
    set_weights(dst, get_weights(src))
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(src(x), dst(x))


def test_set_weights_rejects_missing_unexpected_and_misshaped():
    model = build_model(SPECS[1], 0)
    w = get_weights(model)
    name = sorted(w)[0]
    with pytest.raises(TrainingError, match=f"missing \\['{name}'\\]"):
        set_weights(model, {k: v for k, v in w.items() if k != name})
    with pytest.raises(TrainingError, match="unexpected \\['extra'\\]"):
        set_weights(model, w | {"extra": np.zeros(1, np.float32)})
    with pytest.raises(TrainingError, match=f"{name} has shape"):
        set_weights(model, w | {name: np.zeros((1, 1), np.float32)})


def test_a_few_training_steps_learn_breast_cancer(bc):
    model = build_model(default_model_spec(bc), 0)
    before = evaluate(model, bc.x_test, bc.y_test)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.from_numpy(bc.x_train), torch.from_numpy(bc.y_train)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    after = evaluate(model, bc.x_test, bc.y_test)
    assert after["loss"] < before["loss"]
    assert after["accuracy"] > 0.9 and after["auc"] > 0.95
    assert after["n"] == len(bc.y_test)


def test_evaluate_multiclass_has_no_auc_and_restores_mode():
    d = load_dataset("digits")
    model = build_model(default_model_spec(d), 0)
    model.train()
    out = evaluate(model, d.x_test, d.y_test)
    assert set(out) == {"accuracy", "loss", "n"} and 0.0 <= out["accuracy"] <= 1.0
    assert model.training


def test_evaluate_rejects_mismatched_input(bc):
    model = build_model(default_model_spec(bc), 0)
    with pytest.raises(DataSchemaError, match="equally many"):
        evaluate(model, bc.x_test, bc.y_test[:-1])
    with pytest.raises(DataSchemaError, match="labels outside"):
        evaluate(model, bc.x_test[:3], np.asarray([0, 1, 5]))


@pytest.mark.parametrize("name", ["breast_cancer", "german_credit", "digits"])
def test_default_model_spec_fits_the_dataset(name):
    d = load_dataset(name)
    spec = default_model_spec(d)
    assert spec.input_shape == d.input_shape and spec.num_classes == d.num_classes
    assert default_model_spec(name) == spec
    model = build_model(spec, 0)
    assert model(torch.from_numpy(d.x_test[:2])).shape == (2, d.num_classes)
