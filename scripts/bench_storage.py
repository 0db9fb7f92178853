#!/usr/bin/env python3
"""Blob storage throughput: put/get MB/s for the local store and the js-ipfs node at
1 and 20 MiB, and the CID builder's MB/s on one core.

    .venv/bin/python scripts/bench_storage.py [--json] [--repeat N] [--out FILE]

Starts its own IPFS node in a temporary directory and stops it at the end.
MB/s is 10^6 bytes per second of wall-clock time, best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.services.ipfs import IpfsNode
from fedchain.storage.cid import CidBuilder, compute_cid
from fedchain.storage.ipfs import IpfsStore
from fedchain.storage.local import LocalStore

MIB = 1024 * 1024


def _best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _mbps(size: int, seconds: float) -> float:
    return round(size / seconds / 1e6, 1)


def bench_store(store: Any, sizes: list[int], repeat: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sizes:
        data = np.random.default_rng(seed + size).bytes(size)
        cid = store.put(data)
        put_s = _best(functools.partial(store.put, data), repeat)
        get_s = _best(functools.partial(store.get, cid), repeat)
        assert store.get(cid) == data
        out[f"{size // MIB}MiB"] = {
            "put_MBps": _mbps(size, put_s),
            "get_MBps": _mbps(size, get_s),
            "put_s": round(put_s, 4),
            "get_s": round(get_s, 4),
        }
    return out


def bench_cid(size: int, repeat: int) -> dict[str, Any]:
    data = np.random.default_rng(0).bytes(size)
    one_shot = _best(lambda: compute_cid(data), repeat)

    def streamed() -> None:
        builder = CidBuilder()
        view = memoryview(data)
        for start in range(0, size, MIB):
            builder.update(view[start : start + MIB])
        builder.cid()

    stream_s = _best(streamed, repeat)
    import hashlib

    sha_s = _best(lambda: hashlib.sha256(data).digest(), repeat)
    return {
        "size_MiB": size // MIB,
        "cid_MBps": _mbps(size, one_shot),
        "cid_streamed_1MiB_pieces_MBps": _mbps(size, stream_s),
        "plain_sha256_MBps": _mbps(size, sha_s),
        "goal_MBps": 200,
        "meets_goal": size / one_shot / 1e6 >= 200,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON document here")
    args = parser.parse_args()

    sizes = [1 * MIB, 20 * MIB]
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "repeat": args.repeat,
    }
    with tempfile.TemporaryDirectory(prefix="fedchain-bench-") as tmp:
        local = LocalStore(Path(tmp) / "blobs")
        results["local"] = bench_store(local, sizes, args.repeat, seed=1)
        with IpfsNode(Path(tmp) / "ipfs") as node:
            assert node.info is not None
            results["ipfs"] = {"version": node.info.version}
            with IpfsStore(node.api_url, timeout_s=120) as store:
                results["ipfs"].update(bench_store(store, sizes, args.repeat, seed=2))
    results["cid_builder"] = bench_cid(64 * MIB, args.repeat)

    text = json.dumps(results, indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        for store_name in ("local", "ipfs"):
            for size_name in ("1MiB", "20MiB"):
                r = results[store_name][size_name]
                print(f"{store_name:5s} {size_name:5s} put {r['put_MBps']:8.1f} MB/s  get {r['get_MBps']:8.1f} MB/s")
        c = results["cid_builder"]
        print(f"CID builder {c['cid_MBps']} MB/s (sha256 alone {c['plain_sha256_MBps']} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
