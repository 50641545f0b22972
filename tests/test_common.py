"""common.py: the CPU allocator setting that keeps freed tensors' memory in the process, atomic writes that reach
the disk, and the process group's timeout; cpu_env.py's OpenMP setting, in place before any script imports torch."""
import ast
import datetime
import os
import subprocess
import sys

import pytest
import torch.distributed as dist

from common import atomic_write, init_distributed
from conftest import REPO

TRAIN_STEPS = """
import resource, sys, torch
from common import keep_freed_cpu_memory
from model import GPT, GPTConfig
if sys.argv[1] == 'keep':
    assert keep_freed_cpu_memory()
torch.manual_seed(0)
model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=128, vocab_size=50304))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, 50304, (4, 128))
def step():  # a CPU training step's big blocks: the 4 x 128 x 50304 logits (103 MB) and their gradients
    _, loss = model(x, targets=x)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_training_steps_reuse_freed_memory_instead_of_page_faulting():
    """By default glibc unmaps every freed block over 32 MiB, so each step page-faults its logits-sized blocks back
    in (~100K faults a step here); with keep_freed_cpu_memory() they come back from the heap."""
    faults = {mode: int(subprocess.run([sys.executable, "-c", TRAIN_STEPS, mode], cwd=REPO, check=True,
                                       capture_output=True, text=True).stdout) for mode in ("default", "keep")}
    assert faults["default"] > 5 * 50_000
    assert faults["keep"] < faults["default"] / 5


def test_atomic_write_reaches_the_disk_before_and_after_the_rename(tmp_path, monkeypatch):
    synced = []  # (path, whether the final file existed yet)
    real_fsync = os.fsync

    def fsync(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), (tmp_path / "ckpt.pt").exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_write(tmp_path / "ckpt.pt") as tmp:
        with open(tmp, "wb") as f:
            f.write(b"weights")
    assert (tmp_path / "ckpt.pt").read_bytes() == b"weights"
    assert synced[0][0].startswith(str(tmp_path / ".tmp-")) and not synced[0][1]  # the data, before the rename
    assert synced[1] == (str(tmp_path), True)  # the directory entry, after it
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_init_distributed_passes_the_timeout(monkeypatch):
    seen = {}
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setenv("RANK", "0"), monkeypatch.setenv("LOCAL_RANK", "0"), monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_distributed("gloo", "cpu", timeout_minutes=7)[:4] == (True, 0, 0, 1)
    assert seen == {"backend": "gloo", "timeout": datetime.timedelta(minutes=7)}


def test_every_script_sets_the_openmp_environment_before_importing_torch():
    """libgomp reads GOMP_SPINCOUNT once, when torch loads it: a script that imports torch (or a module that does)
    before cpu_env runs with the default spinning."""
    scripts = [p for p in sorted(REPO.glob("*.py")) if "__main__" in p.read_text() and "torch" in p.read_text()]
    assert {"train.py", "grow.py", "bench.py", "attention_probe.py", "sample.py"} <= {p.name for p in scripts}
    for path in scripts:
        tree = ast.parse(path.read_text())
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        first = imports[0]
        assert isinstance(first, ast.Import) and first.names[0].name == "cpu_env", f"{path.name}: import cpu_env first"


@pytest.mark.parametrize("preset, expected", [(None, "1000"), ("50000", "50000")])
def test_cpu_env_sets_the_spin_count_unless_the_user_did(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"} | ({"GOMP_SPINCOUNT": preset} if preset else {})
    out = subprocess.run([sys.executable, "-c", "import train, os; print(os.environ['GOMP_SPINCOUNT'])"], cwd=REPO,
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
