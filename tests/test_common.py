"""common.py: the CPU allocator setting that keeps freed tensors' memory in the process."""
import subprocess
import sys

import pytest

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
