#!/usr/bin/env python
"""Measure the data layer: dataset load times, schema digests, partitioning cost and
skew, participant-file I/O, model sizes. Writes one JSON document (stdout or --out)."""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here instead of stdout")
    parser.add_argument("--clients", type=int, default=100, help="participants for the MNIST partition timings")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from fedchain.fl.datasets import available_datasets, load_dataset
    from fedchain.fl.models import build_model, default_model_spec, num_parameters
    from fedchain.fl.partition import PartitionSpec, label_skew, partition
    from fedchain.fl.schema import load_client_data, save_client_data

    result: dict = {"python": platform.python_version(), "torch": torch.__version__, "datasets": {}}
    for name in available_datasets():
        ds, first = timed(functools.partial(load_dataset, name))
        _, second = timed(functools.partial(load_dataset, name))
        digest, t_digest = timed(ds.schema.digest)
        spec = default_model_spec(ds)
        model, t_build = timed(functools.partial(build_model, spec, 0))
        result["datasets"][name] = {
            "train": int(len(ds.y_train)),
            "test": int(len(ds.y_test)),
            "features": int(ds.schema.num_features),
            "load_s_first": round(first, 4),
            "load_s_again": round(second, 4),
            "schema_digest": "0x" + digest.hex(),
            "schema_digest_s": round(t_digest, 5),
            "schema_json_bytes": len(ds.schema.to_json().encode()),
            "model": spec.to_dict(),
            "model_parameters": num_parameters(model),
            "model_build_s": round(t_build, 4),
        }

    mnist = load_dataset("mnist")
    y = mnist.y_train
    timings = {}
    for scheme in ("iid", "dirichlet", "quantity", "industry"):
        spec = PartitionSpec(scheme, args.clients, alpha=0.5, seed=0,
                             profile="post-offices" if scheme == "industry" else None)
        parts, t = timed(functools.partial(partition, y, spec))
        timings[scheme] = {"seconds": round(t, 4), "label_skew": round(label_skew(y, parts), 4),
                           "min_size": int(min(p.size for p in parts)), "max_size": int(max(p.size for p in parts))}
    result["mnist_partition"] = {"clients": args.clients, "schemes": timings}

    skew = {}
    for alpha in (0.05, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0):
        values = [label_skew(y, partition(y, PartitionSpec("dirichlet", 20, alpha=alpha, seed=s))) for s in range(5)]
        skew[str(alpha)] = {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4)}
    result["mnist_dirichlet_skew_20_clients"] = skew

    with tempfile.TemporaryDirectory() as tmp:
        idx = np.arange(6000)
        path = Path(tmp) / "client.npz"
        _, t_save = timed(lambda: save_client_data(path, mnist.x_train[idx], y[idx], mnist.schema))
        _, t_load = timed(lambda: load_client_data(path, mnist.schema))
        result["client_file_6000_mnist"] = {"bytes": path.stat().st_size, "save_s": round(t_save, 4),
                                            "load_and_validate_s": round(t_load, 4)}

    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
