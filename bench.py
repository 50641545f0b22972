"""
Training speed of any train.py config: tokens/s, ms/iter, MFU and peak memory.
    python bench.py config/train_shakespeare.py
    python bench.py config/train_gpt2.py --batch_size=4 --gradient_accumulation_steps=1 --device=cpu
    python bench.py config/train_gpt2.py --gradient_accumulation_steps=1 --compile=False   # compile off on CUDA

It takes train.py's keys (config files, then --key=value, with the same meanings) plus bench_warmup and bench_iters,
builds the model as train.py does (init_from included) and times whole training iterations: forward and backward
over gradient_accumulation_steps micro-batches, gradient clipping and the AdamW step. The batches are random token
ids, so bench.py reads no data file (nothing needs preparing, and vocab_size=None means GPT-2's 50304).
One process, no DDP: per-GPU figures.

Reported: the median over bench_iters timed iterations after bench_warmup untimed ones (which also absorb
torch.compile), CUDA synchronized around each; MFU against the GPU's dense peak for the dtype ("unknown device"
where the peak is not known, e.g. on CPU); peak memory = torch.cuda.max_memory_allocated over the timed iterations
on CUDA, the process's peak RSS on CPU. Output: one summary line, then the same figures as one JSON line.
"""
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch

from common import fail, setup_device
from configurator import configure
from train import DEFAULTS as TRAIN_DEFAULTS
from train import build_model, check_config, train_step

DEFAULTS = dict(TRAIN_DEFAULTS, bench_warmup=3, bench_iters=10)
GPT2_VOCAB = 50257


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def device_name(device_type):
    if device_type == "cuda":
        return torch.cuda.get_device_name()
    return f"{cpu_name()}, torch threads={torch.get_num_threads()}"


def peak_memory(device_type):
    """(MiB, what was measured): CUDA's max_memory_allocated since the last reset, else the process's peak RSS."""
    if device_type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20, "cuda max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak RSS"  # Linux reports KiB


def random_batches(cfg, vocab_size, device):
    return [(torch.randint(vocab_size, (cfg["batch_size"], cfg["block_size"]), device=device),
             torch.randint(vocab_size, (cfg["batch_size"], cfg["block_size"]), device=device))
            for _ in range(cfg["gradient_accumulation_steps"])]


def bench(cfg):
    check_config(cfg)
    if cfg["bench_iters"] < 1 or cfg["bench_warmup"] < 0:
        fail("bench_iters must be at least 1 and bench_warmup at least 0")
    device, device_type, ptdtype, autocast = setup_device(cfg["device"], cfg["dtype"])
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg, GPT2_VOCAB, device)[0]
    model.to(device)
    block_size = cfg["block_size"]
    optimizer = model.configure_optimizers(cfg["weight_decay"], cfg["learning_rate"], (cfg["beta1"], cfg["beta2"]), device_type)
    scaler = torch.amp.GradScaler(device_type, enabled=(ptdtype == torch.float16))
    use_compile = cfg["compile"] if cfg["compile"] is not None else device_type == "cuda"
    step_model = torch.compile(model) if use_compile else model
    sync = torch.cuda.synchronize if device_type == "cuda" else (lambda: None)
    vocab_size = min(model.config.vocab_size, GPT2_VOCAB)

    for _ in range(cfg["bench_warmup"]):
        train_step(step_model, optimizer, scaler, autocast, random_batches(cfg, vocab_size, device), cfg["grad_clip"])
    sync()
    if device_type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(cfg["bench_iters"]):
        t0 = time.perf_counter()
        train_step(step_model, optimizer, scaler, autocast, random_batches(cfg, vocab_size, device), cfg["grad_clip"])
        sync()
        times.append(time.perf_counter() - t0)

    dt = statistics.median(times)
    tokens_per_iter = cfg["gradient_accumulation_steps"] * cfg["batch_size"] * block_size
    mfu = model.estimate_mfu(cfg["batch_size"] * cfg["gradient_accumulation_steps"], dt, ptdtype)
    peak_mib, memory_kind = peak_memory(device_type)
    return {
        "device": device, "device_name": device_name(device_type), "dtype": str(ptdtype).removeprefix("torch."), "compile": use_compile,
        "params_m": model.get_num_params() / 1e6, "n_layer": model.config.n_layer, "n_head": model.config.n_head,
        "n_embd": model.config.n_embd, "batch_size": cfg["batch_size"], "block_size": block_size,
        "gradient_accumulation_steps": cfg["gradient_accumulation_steps"], "tokens_per_iter": tokens_per_iter,
        "ms_per_iter": dt * 1000, "ms_per_iter_min": min(times) * 1000, "ms_per_iter_max": max(times) * 1000,
        "tokens_per_s": tokens_per_iter / dt, "mfu": mfu, "peak_memory_mib": peak_mib, "memory_kind": memory_kind,
        "warmup_iters": cfg["bench_warmup"], "timed_iters": cfg["bench_iters"],
        "load_avg_1m": os.getloadavg()[0],  # other processes on the machine skew the figures, CPU ones most
    }


def summary(r):
    mfu = f"MFU {r['mfu'] * 100:.1f}%" if r["mfu"] is not None else f"MFU unknown device ({r['device_name']})"
    return (f"{r['params_m']:.2f}M params, {r['device']} {r['dtype']}, compile {'on' if r['compile'] else 'off'}: "
            f"{r['gradient_accumulation_steps']} x {r['batch_size']} x {r['block_size']} tokens/iter, "
            f"{r['ms_per_iter']:.1f} ms/iter (median of {r['timed_iters']}), {r['tokens_per_s']:,.0f} tokens/s, {mfu}, "
            f"peak memory {r['peak_memory_mib']:,.0f} MiB ({r['memory_kind']})")


if __name__ == "__main__":
    result = bench(configure(DEFAULTS, sys.argv[1:]))
    print(summary(result))
    print(json.dumps(result))
