"""Partitioners: disjoint, complete, seeded, and skewed the way each scheme promises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import ConfigError
from fedchain.fl.datasets import load_dataset
from fedchain.fl.partition import (
    PartitionSpec,
    apportion,
    label_histograms,
    label_skew,
    partition,
    partition_names,
    partition_report,
)


def _check_partition(parts, n, spec):
    assert len(parts) == spec.num_clients
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(n))  # disjoint and covers every sample
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0)
        assert p.size >= spec.min_samples


labels = st.integers(2, 6).flatmap(
    lambda c: st.lists(st.integers(0, c - 1), min_size=60, max_size=400).map(lambda v: np.asarray(v, dtype=np.int64))
)


@settings(max_examples=60, deadline=None)
@given(
    y=labels,
    scheme=st.sampled_from(["iid", "dirichlet", "quantity", "industry"]),
    k=st.integers(1, 5),
    alpha=st.sampled_from([0.1, 0.5, 1.0, 10.0]),
    seed=st.integers(0, 2**31),
)
def test_partition_is_disjoint_complete_and_reproducible(y, scheme, k, alpha, seed):
    spec = PartitionSpec(scheme, k, alpha=alpha, seed=seed, min_samples=3)
    try:
        parts = partition(y, spec)
    except ConfigError as err:  # only the documented "cannot meet min_samples" outcome is allowed
        assert "min_samples" in str(err) or "under 3 samples" in str(err)
        return
    _check_partition(parts, y.size, spec)
    again = partition(y, spec)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_dirichlet_always_meets_min_samples_on_digits():
    y = load_dataset("digits").y_train
    for seed in range(5):
        spec = PartitionSpec("dirichlet", 20, alpha=0.05, seed=seed, min_samples=20)
        _check_partition(partition(y, spec), y.size, spec)


def test_other_seed_gives_other_partition():
    y = np.arange(300, dtype=np.int64) % 3
    a = partition(y, PartitionSpec("dirichlet", 4, alpha=0.5, seed=1))
    b = partition(y, PartitionSpec("dirichlet", 4, alpha=0.5, seed=2))
    assert any(not np.array_equal(p, q) for p, q in zip(a, b, strict=True))


def test_dirichlet_skew_increases_as_alpha_falls():
    y = load_dataset("digits").y_train

    def mean_skew(alpha):
        return np.mean([label_skew(y, partition(y, PartitionSpec("dirichlet", 10, alpha=alpha, seed=s))) for s in range(4)])

    skews = [mean_skew(a) for a in (100.0, 10.0, 1.0, 0.1)]
    assert skews == sorted(skews), skews
    assert skews[0] < 0.06 and skews[-1] > 0.5


def test_iid_is_balanced_and_unskewed():
    y = load_dataset("digits").y_train
    parts = partition(y, PartitionSpec("iid", 7, seed=0))
    sizes = [p.size for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert label_skew(y, parts) < 0.1


def test_quantity_skew_grows_as_alpha_falls():
    y = np.arange(2000, dtype=np.int64) % 4

    def spread(alpha):
        return np.mean([np.std([p.size for p in partition(y, PartitionSpec("quantity", 8, alpha=alpha, seed=s))])
                        for s in range(4)])  # fmt: skip

    assert spread(0.2) > spread(2.0) > spread(50.0)
    parts = partition(y, PartitionSpec("quantity", 8, alpha=0.1, seed=0, min_samples=25))
    assert min(p.size for p in parts) >= 25


def test_hospitals_profile_skews_the_malignant_share():
    d = load_dataset("breast_cancer")
    spec = PartitionSpec("industry", 5, profile="hospitals")
    parts = partition(d.y_train, spec)
    _check_partition(parts, d.y_train.size, spec)
    names = partition_names(spec)
    assert names[0] == "oncology-referral-centre" and names[-1] == "screening-programme"
    malignant_share = [float((d.y_train[p] == 0).mean()) for p in parts]
    assert malignant_share == sorted(malignant_share, reverse=True)
    assert malignant_share[0] > 0.5 > 0.1 > malignant_share[-1]


def test_lenders_profile_skews_defaults_and_loan_sizes():
    d = load_dataset("german_credit")
    spec = PartitionSpec("industry", 2, profile="lenders")
    parts = partition(d.y_train, spec, x=d.x_train, feature_names=d.feature_names)
    _check_partition(parts, d.y_train.size, spec)
    assert partition_names(spec) == ("retail-bank", "sub-prime-lender")
    retail, subprime = parts
    assert (d.y_train[retail] == 1).mean() < 0.1 < 0.4 < (d.y_train[subprime] == 1).mean()
    col = d.feature_names.index("credit_amount")
    assert d.x_train[retail, col].mean() > d.x_train[subprime, col].mean() + 0.5


def test_lenders_profile_needs_its_feature():
    with pytest.raises(ConfigError, match="credit_amount"):
        partition(
            np.arange(100, dtype=np.int64) % 2,
            PartitionSpec("industry", 2, profile="lenders"),
            x=np.zeros((100, 3), np.float32),
            feature_names=["a", "b", "c"],
        )


def test_post_offices_see_mostly_two_digits():
    y = load_dataset("digits").y_train
    spec = PartitionSpec("industry", 5, profile="post-offices")
    hist = label_histograms(y, partition(y, spec), 10)
    for i, row in enumerate(hist):
        top_two = row[[2 * i % 10, (2 * i + 1) % 10]].sum()
        assert top_two / row.sum() > 0.6


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scheme": "random", "num_clients": 2}, "scheme"),
        ({"scheme": "iid", "num_clients": 0}, "num_clients"),
        ({"scheme": "dirichlet", "num_clients": 2, "alpha": 0.0}, "alpha"),
        ({"scheme": "dirichlet", "num_clients": 2, "alpha": float("nan")}, "alpha"),
        ({"scheme": "iid", "num_clients": 2, "seed": -1}, "seed"),
        ({"scheme": "iid", "num_clients": 2, "profile": "hospitals"}, "industry scheme only"),
        ({"scheme": "industry", "num_clients": 2, "profile": "farms"}, "profile"),
    ],
)
def test_bad_partition_specs_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PartitionSpec(**kwargs)


def test_too_few_samples_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot give 10 participants at least 10"):
        partition(np.zeros(50, dtype=np.int64), PartitionSpec("iid", 10))


def test_labels_must_be_integers():
    with pytest.raises(ConfigError, match="integer label"):
        partition(np.zeros(50, dtype=np.float32), PartitionSpec("iid", 2))


def test_spec_digest_is_stable_and_sensitive():
    a = PartitionSpec("dirichlet", 4, alpha=0.3, seed=1)
    assert a.digest() == PartitionSpec("dirichlet", 4, alpha=0.3, seed=1).digest()
    assert a.digest() != PartitionSpec("dirichlet", 4, alpha=0.3, seed=2).digest()


@settings(max_examples=100, deadline=None)
@given(total=st.integers(0, 10_000), weights=st.lists(st.floats(0, 100), min_size=1, max_size=20))
def test_apportion_sums_to_total_within_one_of_exact(total, weights):
    out = apportion(total, np.asarray(weights))
    assert out.sum() == total and (out >= 0).all()
    w = np.asarray(weights) if sum(weights) > 0 else np.ones(len(weights))
    assert np.all(np.abs(out - total * w / w.sum()) < 1.0 + 1e-9)


def test_histograms_and_report():
    y = np.asarray([0, 0, 1, 1, 2, 2], dtype=np.int64)
    parts = [np.asarray([0, 2]), np.asarray([1, 3, 4, 5])]
    assert label_histograms(y, parts).tolist() == [[1, 1, 0], [1, 1, 2]]
    report = partition_report(y, parts, names=["alpha-bank", "beta-bank"], label_names=["a", "b", "c"])
    assert "alpha-bank" in report and "beta-bank" in report
    assert report.splitlines()[-2].split() == ["total", "6", "2", "2", "2"]
    assert "label skew" in report


# --- CLI ------------------------------------------------------------------------------------
def test_cli_partition_writes_one_valid_file_per_participant(tmp_path):
    import json

    from click.testing import CliRunner

    from fedchain.cli.main import cli
    from fedchain.fl.schema import load_client_data

    d = load_dataset("breast_cancer")
    args = ["data", "partition", "breast_cancer", "--clients", "3", "--scheme", "industry", "--out", str(tmp_path), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["spec"]["profile"] == "hospitals"
    assert doc["schema_digest"] == "0x" + d.schema.digest().hex()
    assert [c["name"] for c in doc["clients"]] == list(partition_names(PartitionSpec("industry", 3, profile="hospitals")))
    total = 0
    for c in doc["clients"]:
        x, y = load_client_data(tmp_path / c["file"], d.schema)
        assert len(y) == c["samples"] and np.bincount(y, minlength=2).tolist() == c["label_counts"]
        total += len(y)
    assert total == len(d.y_train)
    assert json.loads((tmp_path / "partition.json").read_text()) == doc
    assert "oncology-referral-centre" in (tmp_path / "report.txt").read_text()


def test_cli_partition_rejects_impossible_request(tmp_path):
    from click.testing import CliRunner

    from fedchain.cli.main import cli
    from fedchain.errors import ExitCode

    args = ["data", "partition", "breast_cancer", "--clients", "100", "--scheme", "iid", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == ExitCode.CONFIG
    assert "cannot give 100 participants" in result.stderr
    assert not list(tmp_path.iterdir())


def test_generic_sites_profile_skews_binary_labels():
    y = np.arange(400, dtype=np.int64) % 2
    parts = partition(y, PartitionSpec("industry", 2))
    assert partition_names(PartitionSpec("industry", 2)) == ("site-1", "site-2")
    assert (y[parts[0]] == 0).mean() > 0.8 and (y[parts[1]] == 1).mean() > 0.8
