"""checkpoint.py: a weights-only load memory-maps the file, so a checkpoint's optimizer state is never read."""
import subprocess
import sys

import pytest
import torch

from checkpoint import save_checkpoint
from conftest import REPO
from model import GPT, GPTConfig

LOAD = """
import sys
from checkpoint import load_model
def peak_kib():
    return int(next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')).split()[1])
before = peak_kib()
open('/proc/self/clear_refs', 'w').write('5')  # restart the peak here (it also carries over the forking parent's)
model, info = load_model(sys.argv[1])
print((peak_kib() - before) // 1024, sum(p.numel() for p in model.parameters()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_load_model_reads_only_the_weights(tmp_path):
    # a small model beside 400 MB of AdamW-like state, as an xl checkpoint holds ~12 GB of it beside 6 GB of weights
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=512))
    optimizer = {"state": {0: {"exp_avg": torch.ones(50_000_000), "exp_avg_sq": torch.ones(50_000_000)}}, "param_groups": []}
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"model": model.state_dict(), "optimizer": optimizer, "model_args": vars(model.config)}, path)
    del optimizer
    peak_mib, n_params = map(int, subprocess.run([sys.executable, "-c", LOAD, str(path)], cwd=REPO, check=True,
                                                 capture_output=True, text=True).stdout.split())
    assert n_params == sum(p.numel() for p in model.parameters())
    assert peak_mib < 100, f"loading the weights raised the peak RSS by {peak_mib} MiB: the optimizer state was read"
