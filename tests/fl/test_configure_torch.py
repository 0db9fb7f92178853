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


def test_fedchains_sgd_steps_are_torchs_bit_for_bit() -> None:
    """fedchain.fl.client.SGD against torch.optim.SGD on the same model, data and order, with and without momentum
    and weight decay: the same bytes after every step."""
    import torch

    from fedchain.fl.client import SGD

    for lr, momentum, weight_decay in ((0.1, 0.0, 0.0), (0.05, 0.9, 0.0), (0.01, 0.5, 1e-3), (0.3, 0.0, 1e-2)):
        torch.manual_seed(3)
        ours_model = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        theirs_model = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        theirs_model.load_state_dict(ours_model.state_dict())
        ours = SGD(list(ours_model.parameters()), lr=lr, momentum=momentum, weight_decay=weight_decay)
        theirs = torch.optim.SGD(theirs_model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
        for step in range(12):
            for model, opt in ((ours_model, ours), (theirs_model, theirs)):
                opt.zero_grad(set_to_none=True)
                batch = slice(step * 5 % 60, step * 5 % 60 + 16)
                torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
                opt.step()
            for a, b in zip(ours_model.parameters(), theirs_model.parameters(), strict=True):
                assert a.detach().numpy().tobytes() == b.detach().numpy().tobytes(), (lr, momentum, weight_decay, step)


def test_local_training_imports_no_compiler_stack() -> None:
    """A participant's training (FedAvg, momentum) never imports torch._dynamo (2 s of CPU at start-up)."""
    script = """
import json, sys
import numpy as np
from fedchain.fl import client
from fedchain.fl.models import ModelSpec, build_model, get_weights
from fedchain.fl.records import ClientConfig
from fedchain.types import Address, Digest, RoundId
client.configure_torch()
spec = ModelSpec(arch="mlp", input_shape=(6,), num_classes=2, hidden=(8,))
rng = np.random.default_rng(0)
x, y = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 2, 40)
weights = get_weights(build_model(spec, 1))
client.train_local(spec, weights, x, y, ClientConfig("fedavg", local_epochs=1, batch_size=8, lr=0.1, momentum=0.9), seed=1,
                   participant=Address("0x" + "11" * 20), round_id=RoundId(1), base_model_digest=Digest(bytes(32)))
print(json.dumps({"dynamo": "torch._dynamo" in sys.modules}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"dynamo": False}
