"""
Peak memory per GPU of the paper's configs under DDP and FSDP, with and without activation checkpointing: the
table of docs/speed.md (python memory.py prints it; a few minutes on 2 CPU cores).

Model states come from the parameter counts of models built on the meta device. Activations come from measurement:
the bytes each block keeps for backward per token (torch's saved-tensor hooks, bf16 autocast, on CPU) at 1/16 of the
model's widths and heads and at two window lengths, scaled up by 16 (every saved tensor but the attention's
per-head statistics is tokens x some width) and to the
config's micro-batch. An estimate, not a measurement of the GPU's allocator: tests/test_gpu.py prints measured peaks.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import sys
from dataclasses import dataclass

import torch

from configurator import configure
from losses import CHUNK_TOKENS, LossSpec
from model import GPT, GPTConfig
from parallel import checkpoint_activations

GIB = 2**30


@dataclass
class MemoryConfig:
    gpus: int = 8  # the GPUs FSDP shards the model states over
    scale: int = 16  # the activations are measured at the widths and heads divided by this, then scaled up by it


LLAMA = dict(bias=False, norm="rmsnorm", position="rope", mlp="swiglu", tie_embeddings=False)
# name: (model, micro-batch per GPU, block_size as the configs train them)
CONFIGS = {
    "GPT-2 medium 24L (train_gpt2m_24)": (dict(n_layer=24, n_head=16, n_embd=1024), 12, 1024),
    "GPT-2 medium 16L (inherit_gpt2m_16)": (dict(n_layer=16, n_head=16, n_embd=1024), 12, 1024),
    "GPT-2 XL 48L (train_gpt2xl_48)": (dict(n_layer=48, n_head=25, n_embd=1600), 4, 1024),
    "GPT-2 XL 24L (inherit_gpt2xl_24)": (dict(n_layer=24, n_head=25, n_embd=1600), 4, 1024),
    "OpenLLaMA-3B 13L (inherit_openllama3b_13)": (dict(n_layer=13, n_head=32, n_embd=3200, mlp_hidden=8640, vocab_size=32000,
                                                       **LLAMA), 4, 2048),
    "Llama-3.1-8B 16L": (dict(n_layer=16, n_head=32, n_kv_head=8, n_embd=4096, mlp_hidden=14336, vocab_size=128256,
                              rope_theta=500000.0, **LLAMA), 4, 2048),
}


def saved_bytes(model, T, checkpointed):
    """Bytes that one forward of one window of T tokens keeps for backward (each storage once), parameters aside."""
    params = {p.data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    if checkpointed:
        for block in model.transformer.h:
            checkpoint_activations(block)
    idx = torch.randint(model.config.vocab_size, (1, T))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model(idx, idx, loss_spec=LossSpec())
    return sum(kept.values())


def per_token(args, checkpointed, scale):
    """(bytes per token of one block, bytes per token of the rest) at the full widths."""
    small = {k: v // scale if k in ("n_embd", "mlp_hidden") else max(1, v // scale) if k in ("n_head", "n_kv_head") else v
             for k, v in args.items()}  # heads too: the widths must still divide among them
    measured = {}
    for layers in (1, 2):
        for T in (512, 1024):  # past CPU_FP32_ATTENTION_T: bf16 attention, as on GPUs
            torch.manual_seed(0)
            model = GPT(GPTConfig(**dict(small, n_layer=layers, block_size=1024)))
            measured[layers, T] = saved_bytes(model, T, checkpointed)
    slope = {layers: (measured[layers, 1024] - measured[layers, 512]) / 512 for layers in (1, 2)}
    return scale * (slope[2] - slope[1]), scale * (2 * slope[1] - slope[2])


def states(cfg):
    """Parameter counts (all, of one block, of the rest) of the model, built on the meta device."""
    with torch.device("meta"):
        model = GPT(cfg)
    total = sum(p.numel() for p in model.parameters())
    block = sum(p.numel() for p in model.transformer.h[0].parameters())
    return total, block, total - cfg.n_layer * block


def peak(cfg, batch, T, parallelism, checkpointed, block_tokens, rest_tokens, block_full, gpus=8):
    """Estimated peak bytes on one GPU of gpus, bf16 autocast (DDP) or bf16 parameters (FSDP), AdamW."""
    total, block, rest = states(cfg)
    tokens = batch * T
    kept = tokens * (cfg.n_layer * block_tokens + rest_tokens)
    # checkpointing recomputes one block at a time in backward: its full activations exist then
    recompute = tokens * block_full if checkpointed else 0
    V, C = cfg.vocab_size, cfg.n_embd
    loss = V * C * 4 + CHUNK_TOKENS * V * 6  # the fused loss's float32 lm_head gradient, one chunk's logits (bf16 + fp32)
    if parallelism == "ddp":
        # float32 weights, gradients, DDP's gradient buckets (a second copy), AdamW's two moments; autocast's bf16
        # copies of the weights live through forward and backward
        model_states = total * (4 + 4 + 4 + 8) + total * 2
    else:
        # this rank's shards of float32 weights, gradients and AdamW; gathered: the root (embeddings, lm_head) for
        # the whole step, two blocks (the one computing and the one prefetched) in bf16 with their bf16 gradients
        # and float32 reduce-scatter inputs
        model_states = total * 16 / gpus + rest * (2 + 2 + 4) + 2 * block * (2 + 2 + 4) + V * C * 2
    return model_states + kept + recompute + loss


def main(settings):
    rows = []
    for name, (args, batch, T) in CONFIGS.items():
        cfg = GPTConfig(**dict(args, block_size=T))
        block_full, rest_full = per_token(args, False, settings.scale)
        block_ac, rest_ac = per_token(args, True, settings.scale)
        total = states(cfg)[0]
        cells = []
        for parallelism in ("ddp", "fsdp"):
            for checkpointed in (False, True):
                b, r = (block_ac, rest_ac) if checkpointed else (block_full, rest_full)
                gib = peak(cfg, batch, T, parallelism, checkpointed, b, r, block_full, settings.gpus) / GIB
                cells.append(f"{gib:.1f}" + ("" if gib <= 38 else " (80)" if gib <= 76 else " (>80)"))
        rows.append(f"| {name} | {total / 1e6:.0f}M | {batch} x {T} | {block_full / 1024:.1f} / {block_ac / 1024:.2f} | "
                    + " | ".join(cells) + " |")
    print("| config | params | micro-batch | KiB per token per block (off / on) | DDP | DDP + AC | FSDP | FSDP + AC |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(configure(MemoryConfig, sys.argv[1:]))
