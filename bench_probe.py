"""
Speed of attention_probe.py's protocol on a random-init GPT of any shape: seconds for the whole probe, the part of
it spent in the forward passes that hand out the attention maps (the rest is the k*/m* metrics), forward GFLOP/s
and peak memory.
    python bench_probe.py                                                      # 24 layers, 16 heads, 1024 wide; 100 x 100
    python bench_probe.py --n_layer=48 --n_head=25 --n_embd=1600 --device=cuda  # GPT-2 XL's shape

It takes attention_probe.py's settings (num_seqs, seq_len, batch_size, tau, eta, seed, device; float32 as the probe) and the
model's shape. Random token ids stand in for text, so nothing needs preparing: the probe does the same work
whatever the tokens. The forward passes are timed once on their own, then the whole probe() once.
Forward FLOPs per token: 2 x the blocks' parameters (the matmuls; the probe never runs lm_head) plus
4 x n_layer x seq_len x n_embd for the explicit attention (QK^T and AV). Output: a summary line, then one JSON line.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import json
import os
import sys
import time
from dataclasses import dataclass, fields

import numpy as np
import torch

from attention_probe import ProbeConfig, probe
from bench import device_name, peak_memory
from common import fail, setup_device
from configurator import configure
from data import fixed_windows, get_batch
from model import GPT, GPTConfig


@dataclass
class BenchProbeConfig(ProbeConfig, GPTConfig):
    """attention_probe.py's settings (source, dataset, the sink score's and the ablations' are unused: it times the
    rank probe of a random model on random tokens) and the model's fields."""
    n_layer: int = 24
    n_head: int = 16
    n_embd: int = 1024


TEXT_TOKENS = 1_000_000  # the random "val split" the windows are drawn from


def bench_probe(cfg):
    if cfg.n_embd % cfg.n_head:
        fail(f"n_embd={cfg.n_embd} is not divisible by n_head={cfg.n_head}")
    if cfg.seq_len > cfg.block_size or min(cfg.num_seqs, cfg.seq_len, cfg.batch_size) < 1:
        fail(f"num_seqs, seq_len and batch_size must be at least 1 and seq_len <= block_size={cfg.block_size}")
    device, device_type, _, _ = setup_device(cfg.device, 'float32')  # the probe's forward passes are float32
    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig(**{f.name: getattr(cfg, f.name) for f in fields(GPTConfig)})).to(device).eval()
    tokens = np.random.default_rng(cfg.seed).integers(0, min(cfg.vocab_size, 50257), TEXT_TOKENS, dtype=np.uint16)
    sync = torch.cuda.synchronize if device_type == 'cuda' else (lambda: None)
    num_seqs, seq_len, batch_size = cfg.num_seqs, cfg.seq_len, cfg.batch_size
    offsets = fixed_windows(len(tokens), seq_len, num_seqs, seed=cfg.seed)

    def forward_passes(count):
        with torch.no_grad():
            for start in range(0, count, batch_size):
                x, _ = get_batch(tokens, offsets[start:min(start + batch_size, count)], seq_len, device)
                for _ in model.attention_maps(x):
                    pass
        sync()

    forward_passes(1)  # warm-up: CUDA context, kernel selection, first-touch allocations
    if device_type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    forward_passes(num_seqs)
    forward_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rank, _ = probe(model, tokens, num_seqs, seq_len, cfg.tau, cfg.eta, batch_size, cfg.seed, device)
    probe_s = time.perf_counter() - t0

    block_params = sum(p.numel() for p in model.transformer.h.parameters())
    flops_per_token = 2 * block_params + 4 * cfg.n_layer * seq_len * cfg.n_embd
    forward_gflop = flops_per_token * num_seqs * seq_len / 1e9
    peak_mib, memory_kind = peak_memory(device_type)
    return {
        "device": device, "device_name": device_name(device_type), "dtype": "float32",
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd, "num_seqs": num_seqs,
        "seq_len": seq_len, "batch_size": batch_size, "probe_s": probe_s, "forward_s": forward_s,
        "metrics_s": max(probe_s - forward_s, 0.0), "forward_gflop": forward_gflop,
        "forward_gflop_per_s": forward_gflop / forward_s, "max_rank_mean": rank.max(1).values.mean().item(),
        "peak_memory_mib": peak_mib, "memory_kind": memory_kind,
        "load_avg_1m": os.getloadavg()[0],  # other processes on the machine skew the figures, CPU ones most
    }


def summary(r):
    return (f"probe of a {r['n_layer']}-layer, {r['n_head']}-head, {r['n_embd']}-wide GPT, {r['num_seqs']} x "
            f"{r['seq_len']} tokens, {r['device']} {r['dtype']} ({r['device_name']}): {r['probe_s']:.1f} s "
            f"(forward passes {r['forward_s']:.1f} s at {r['forward_gflop_per_s']:,.0f} GFLOP/s, metrics "
            f"{r['metrics_s']:.1f} s), peak memory {r['peak_memory_mib']:,.0f} MiB ({r['memory_kind']})")


if __name__ == '__main__':
    result = bench_probe(configure(BenchProbeConfig, sys.argv[1:]))
    print(summary(result))
    print(json.dumps(result))
