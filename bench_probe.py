"""
Speed of attention_probe.py's protocol on a random-init GPT of any shape: seconds for the whole probe, the part of
it spent in the forward passes that hand out the attention maps (the rest is the k*/m* metrics), forward GFLOP/s
and peak memory.
    python bench_probe.py                                                      # 24 layers, 16 heads, 1024 wide; 100 x 100
    python bench_probe.py --n_layer=48 --n_head=25 --n_embd=1600 --device=cuda  # GPT-2 XL's shape
    python bench_probe.py --hf_model_type=llama                                 # the transformers path (hf_adapter.py)
    python bench_probe.py --n_layer=32 --n_head=32 --n_kv_head=8 --n_embd=4096 --mlp_hidden=14336 --vocab_size=128256 \
      --norm=rmsnorm --position=rope --mlp=swiglu --tie_embeddings=False --timed_layers=2  # Llama-3 8B: 2 of its 32 blocks

--hf_model_type=<a config.json model_type> times the path that families model.py lacks take instead: a random
transformers model of that type and the same shape (its MLP 4 x n_embd wide, the type's defaults otherwise), in
eager attention behind hf_adapter.py.

It takes attention_probe.py's settings (num_seqs, seq_len, batch_size, tau, eta, seed, device; float32 as the probe) and the
model's shape. Random token ids stand in for text, so nothing needs preparing: the probe does the same work
whatever the tokens. The forward passes are timed once on their own, then the whole probe() once.
--timed_layers=k builds only k of the shape's n_layer blocks, for a shape whose float32 weights outgrow the machine
(Llama-3 8B: 32 GB): the probe goes through the blocks one at a time and holds one block's maps at a time, so its
seconds grow by a block's per block and its memory by a block's weights; the output adds the per-block seconds and
both extrapolated to n_layer blocks (probe_s * n_layer / k; peak + (n_layer - k) x one block's weight bytes), marked
as extrapolated.
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

import hf_adapter
from attention_probe import ProbeConfig, float32_pass, probe
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
    hf_model_type: str = ''  # time the transformers path on a random model of this model_type (llama, falcon, gemma3_text, ...); '': model.py's GPT
    timed_layers: int = 0  # build and time only this many of the n_layer blocks and extrapolate to n_layer; 0: all


TEXT_TOKENS = 1_000_000  # the random "val split" the windows are drawn from


def random_hf_model(cfg):
    """A random transformers model of cfg.hf_model_type and cfg's shape, behind hf_adapter."""
    import transformers
    try:
        config = transformers.AutoConfig.for_model(
            cfg.hf_model_type, hidden_size=cfg.n_embd, num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
            intermediate_size=4 * cfg.n_embd, max_position_embeddings=cfg.block_size, vocab_size=cfg.vocab_size)
    except ValueError as e:
        fail(f"hf_model_type={cfg.hf_model_type!r}: {str(e).splitlines()[0][:200]}")
    hf = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    return hf_adapter.HFModel(hf, f"a random {cfg.hf_model_type}")


def bench_probe(cfg):
    if cfg.n_embd % cfg.n_head:
        fail(f"n_embd={cfg.n_embd} is not divisible by n_head={cfg.n_head}")
    if cfg.seq_len > cfg.block_size or min(cfg.num_seqs, cfg.seq_len, cfg.batch_size) < 1:
        fail(f"num_seqs, seq_len and batch_size must be at least 1 and seq_len <= block_size={cfg.block_size}")
    if not 0 <= cfg.timed_layers <= cfg.n_layer:
        fail(f"timed_layers must be between 1 and n_layer={cfg.n_layer} (0: all), got {cfg.timed_layers}")
    n_layer, cfg.n_layer = cfg.n_layer, cfg.timed_layers or cfg.n_layer  # the model below has the timed blocks only
    device, device_type, _, _ = setup_device(cfg.device, 'float32')  # the probe's forward passes are float32
    torch.manual_seed(cfg.seed)
    model = (random_hf_model(cfg) if cfg.hf_model_type else
             GPT(GPTConfig(**{f.name: getattr(cfg, f.name) for f in fields(GPTConfig)}))).to(device).eval()
    blocks = model.blocks if cfg.hf_model_type else model.transformer.h
    tokens = np.random.default_rng(cfg.seed).integers(0, min(cfg.vocab_size, 50257), TEXT_TOKENS, dtype=np.uint16)
    sync = torch.cuda.synchronize if device_type == 'cuda' else (lambda: None)
    num_seqs, seq_len, batch_size = cfg.num_seqs, cfg.seq_len, cfg.batch_size
    offsets = fixed_windows(len(tokens), seq_len, num_seqs, seed=cfg.seed)

    def forward_passes(count):
        with torch.no_grad(), float32_pass(device):  # as the probe: TF32 off
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

    block_params = sum(p.numel() for block in blocks for p in block.parameters())
    flops_per_token = 2 * block_params + 4 * cfg.n_layer * seq_len * cfg.n_embd
    forward_gflop = flops_per_token * num_seqs * seq_len / 1e9
    peak_mib, memory_kind = peak_memory(device_type)
    block_mib = sum(p.numel() * p.element_size() for p in blocks[0].parameters()) / 2**20
    extrapolated = {} if cfg.n_layer == n_layer else {
        "timed_layers": cfg.n_layer, "probe_s_per_layer": probe_s / cfg.n_layer, "block_weights_mib": block_mib,
        "probe_s_extrapolated": probe_s * n_layer / cfg.n_layer,
        "peak_memory_mib_extrapolated": peak_mib + (n_layer - cfg.n_layer) * block_mib}
    return {
        "device": device, "device_name": device_name(device_type), "dtype": "float32",
        "model_path": "transformers" if cfg.hf_model_type else "gpt",
        "architecture": model.config.architecture if cfg.hf_model_type else "GPT",
        "n_layer": n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd, "num_seqs": num_seqs,
        "seq_len": seq_len, "batch_size": batch_size, "probe_s": probe_s, "forward_s": forward_s,
        "metrics_s": max(probe_s - forward_s, 0.0), "forward_gflop": forward_gflop,
        "forward_gflop_per_s": forward_gflop / forward_s, "max_rank_mean": rank.max(1).values.mean().item(),
        "peak_memory_mib": peak_mib, "memory_kind": memory_kind,
        "load_avg_1m": os.getloadavg()[0],  # other processes on the machine skew the figures, CPU ones most
        **extrapolated,
    }


def summary(r):
    built = f" ({r['timed_layers']} of its blocks built)" if 'timed_layers' in r else ""
    return (f"probe of a {r['n_layer']}-layer{built}, {r['n_head']}-head, {r['n_embd']}-wide {r['architecture']}, {r['num_seqs']} x "
            f"{r['seq_len']} tokens, {r['device']} {r['dtype']} ({r['device_name']}): {r['probe_s']:.1f} s "
            f"(forward passes {r['forward_s']:.1f} s at {r['forward_gflop_per_s']:,.0f} GFLOP/s, metrics "
            f"{r['metrics_s']:.1f} s), peak memory {r['peak_memory_mib']:,.0f} MiB ({r['memory_kind']})"
            + (f"; {r['probe_s_per_layer']:.1f} s per block, extrapolated to all {r['n_layer']}: "
               f"{r['probe_s_extrapolated']:.0f} s, "
               f"{r['peak_memory_mib_extrapolated']:,.0f} MiB" if 'timed_layers' in r else ""))


if __name__ == '__main__':
    result = bench_probe(configure(BenchProbeConfig, sys.argv[1:]))
    print(summary(result))
    print(json.dumps(result))
