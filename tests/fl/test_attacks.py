"""Evaluation-only attacks: what each does to an update or to data, and the backdoor metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedchain.errors import ConfigError
from fedchain.fl import attacks
from fedchain.fl.records import ClientUpdate
from fedchain.types import Address, Digest, RoundId


def honest() -> ClientUpdate:
    return ClientUpdate(
        Address("0x" + "01" * 20),
        RoundId(1),
        50,
        {"w": np.array([1.0, -2.0], np.float32), "cv/w": np.array([0.5, 0.5], np.float32)},
        Digest(b"\x00" * 32),
        extras={"local_steps": 4},
    )


def test_sign_flip_negates_model_tensors_only() -> None:
    out = attacks.sign_flip(honest(), 2.0)
    np.testing.assert_array_equal(out.tensors["w"], np.array([-2.0, 4.0], np.float32))
    np.testing.assert_array_equal(out.tensors["cv/w"], honest().tensors["cv/w"])
    assert out.tensors["w"].dtype == np.float32
    assert (out.participant, out.num_samples, dict(out.extras)) == (honest().participant, 50, {"local_steps": 4})


def test_scaling_multiplies() -> None:
    np.testing.assert_array_equal(attacks.scaling(honest(), 10.0).tensors["w"], np.array([10.0, -20.0], np.float32))


def test_gaussian_noise_is_seeded() -> None:
    a = attacks.gaussian_noise(honest(), 1.0, seed=3)
    b = attacks.gaussian_noise(honest(), 1.0, seed=3)
    c = attacks.gaussian_noise(honest(), 1.0, seed=4)
    assert a.tensors["w"].tobytes() == b.tensors["w"].tobytes() != c.tensors["w"].tobytes()
    assert not np.array_equal(a.tensors["w"], honest().tensors["w"])


def test_attack_spec_dispatch_round_trip_and_unknown_kind() -> None:
    attack = attacks.AttackSpec.parse("sign_flip:1")
    np.testing.assert_array_equal(attack.poison_update(honest(), 0).tensors["w"], np.array([-1.0, 2.0], np.float32))
    assert attacks.AttackSpec.parse(attack.to_text()) == attack and attack.to_text() == "sign_flip:1"
    assert attacks.AttackSpec.parse("scaling").poison_update(honest(), 0).tensors["w"].tolist() == [10.0, -20.0]
    assert attacks.AttackSpec("label_flip").poison_update(honest(), 0) is not None
    with pytest.raises(ConfigError, match="unknown attack 'boost'"):
        attacks.AttackSpec("boost")
    with pytest.raises(ConfigError, match="not a number"):
        attacks.AttackSpec.parse("noise:loud")


def test_label_flip() -> None:
    y = np.array([0, 1, 2, 9], np.int64)
    np.testing.assert_array_equal(attacks.label_flip(y, 10), [9, 8, 7, 0])
    with pytest.raises(ConfigError, match="outside"):
        attacks.label_flip(np.array([3]), 3)


def test_backdoor_stamps_a_fraction_and_relabels() -> None:
    x = np.zeros((10, 1, 5, 5), np.float32)
    x[:, 0, 0, 0] = 1.0
    y = np.arange(10) % 3
    xp, yp = attacks.add_backdoor(x, y, target=2, fraction=0.4, seed=0)
    stamped = np.where((xp[:, 0, -3:, -3:] == 1.0).all(axis=(1, 2)))[0]
    assert len(stamped) == 4
    assert (yp[stamped] == 2).all()
    untouched = np.setdiff1d(np.arange(10), stamped)
    np.testing.assert_array_equal(xp[untouched], x[untouched])
    np.testing.assert_array_equal(yp[untouched], y[untouched])


def test_backdoor_needs_images() -> None:
    with pytest.raises(ConfigError, match="images shaped"):
        attacks.stamp_trigger(np.zeros((3, 30), np.float32))


class CornerDetector(nn.Module):
    """Class 1 exactly when the bottom-right pixel is bright."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        corner = x[:, 0, -1, -1]
        return torch.stack([0.5 - corner, corner - 0.5], dim=1)


def test_backdoor_success_rate_counts_triggered_non_target_samples() -> None:
    x = np.zeros((6, 1, 4, 4), np.float32)
    y = np.array([0, 0, 1, 0, 1, 0])
    assert attacks.backdoor_success_rate(CornerDetector(), x, y, target=1, value=1.0) == 1.0
    assert attacks.backdoor_success_rate(CornerDetector(), x, y, target=1, value=0.0) == 0.0  # a dark trigger does nothing
    with pytest.raises(ConfigError, match="no test samples"):
        attacks.backdoor_success_rate(CornerDetector(), x, np.ones(6, np.int64), target=1)
