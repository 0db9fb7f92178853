"""``configure_torch``: one thread and the deterministic-algorithms switch, without the compiler stack that
``torch.use_deterministic_algorithms`` imports (1.7 s of CPU and 70 MiB in every participant process)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from fedchain.fl.client import configure_torch
configure_torch()
import torch
print(json.dumps({"deterministic": torch.are_deterministic_algorithms_enabled(),
                  "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
                  "threads": torch.get_num_threads(), "inductor": "torch._inductor" in sys.modules}))
"""

def test_configure_torch_sets_one_thread_and_determinism_without_importing_the_compiler() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state == {"deterministic": True, "warn_only": False, "threads": 1, "inductor": False}


def test_training_is_bit_for_bit_reproducible_across_processes() -> None:
    """Two fresh processes training the same model on the same data from the same seed produce the same bytes."""
    script = """
import hashlib, torch
from fedchain.fl.client import configure_torch
configure_torch()
torch.manual_seed(7)
model = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(256, 20), torch.randint(0, 3, (256,))
for _ in range(20):
    opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
print(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest())
"""
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              check=True).stdout.strip() for _ in range(2)}
    assert len(digests) == 1
