"""
Train a GPT. One process on CPU or one GPU:
    python train.py config/train_shakespeare.py --batch_size=32
DDP on one node with 8 GPUs (NCCL on CUDA, gloo on CPU):
    torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py
FSDP2 instead of DDP (sharded weights, gradients and AdamW state; parallel.py; the model built on the meta device and
filled from the memory-mapped source, each rank reading its shards: build_model), with activation checkpointing:
    torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py --parallelism=fsdp --activation_checkpointing=True
Multi-node: one torchrun per node, --nnodes=N --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT (docs/experiments.md).

Settings (TrainConfig below) keep nanoGPT's names and meanings, so a nanoGPT config file runs unchanged. init_from is one of
'scratch', 'resume' (continue out_dir/ckpt.pt exactly), 'gpt2*', 'hf:owner/name' (the Hugging Face hub), a local Hugging
Face directory of any decoder (model_path: model.py where it represents the family exactly, else transformers through
hf_adapter.py), or the path of a checkpoint (for example one written by inherit.py): training then starts from those
weights with a fresh optimizer. train() is also called in-process by grow.py. probe_interval=N probes
the model every N steps (attention_probe.py's per-layer MaxRank, AvgMass, block influence and attention-sink score) into
metrics.jsonl and out_dir/probe_history.png.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import torch
import torch.distributed as dist

import attention_probe
import parallel
from checkpoint import (is_tokenizer_folder, load_checkpoint, load_model, model_from_checkpoint,
                        save_checkpoint, tokenizer_meta)
from common import atomic_write, fail, init_distributed, setup_device, tensor_of
from configurator import configure
from data import check_fits, check_window_start, fixed_windows, get_batch, hf_tokenizer, load_meta, open_tokens, window_starts
from hf_adapter import HFModel
from inherit import InheritConfig, inherit, inherited_weights, parse_layers, selection_named
from losses import LossSpec
from model import GPT, GPTConfig, peak_flops


@dataclass
class TrainConfig(InheritConfig, GPTConfig):
    """train.py's settings. Defaults: GPT-2 124M on OpenWebText, as in nanoGPT. The model fields (block_size,
    vocab_size, n_layer, n_head, n_embd, dropout, bias, ...) are GPTConfig's, in model.py; they shape a model trained
    from scratch and are ignored when init_from gives a model (dropout and a shorter block_size still apply). The
    inherit_* fields (inherit.py) say what a model built from init_from inherits."""
    # model fields whose training default differs from GPTConfig's
    bias: bool = False
    vocab_size: int | None = None  # None: the dataset's vocab rounded up to a multiple of 64 (50257 -> 50304)
    # I/O
    out_dir: str = 'out'
    eval_interval: int = 2000
    log_interval: int = 1
    log_seconds: float = 30.0  # also log when this much wall time passed since the last log line, so no minute passes silently (0: off)
    eval_iters: int = 200  # with eval_windows=None, each eval uses eval_iters * batch_size fixed windows per split
    eval_windows: int | None = None  # fixed windows per split in every eval, whatever the batch size; None: eval_iters * batch_size (nanoGPT)
    eval_only: bool = False  # evaluate init_from on the fixed windows and exit
    probe_interval: int = 0  # every this many steps, probe the model on fixed val windows (MaxRank, AvgMass, BI, attention sink per layer) into metrics.jsonl; 0: off
    always_save_checkpoint: bool = True  # if False, save only when val loss improves
    init_from: str = 'scratch'  # 'scratch', 'resume', a checkpoint or run directory, 'gpt2*', 'hf:owner/name', or a local HF GPT-2/Llama/Qwen2 directory
    model_path: str = 'auto'  # how an HF init_from or teacher runs: 'auto' (model.py where it represents the model exactly, else transformers), 'gpt' (model.py) or 'transformers' (any decoder, hf_adapter.py)
    # knowledge distillation: loss = (1 - kd_alpha) * CE + kd_alpha * T^2 * KL(p_teacher || p_student), T = kd_temperature
    teacher: str = ''  # '' = off; else any model source init_from accepts (checkpoint, run dir, 'gpt2*', HF dir), frozen
    kd_alpha: float = 0.4  # weight of the KD term (the paper: 0.6 CE + 0.4 KD)
    kd_temperature: float = 1.0  # T: both distributions at temperature T, the KD term scaled by T^2
    # wandb logging
    wandb_log: bool = False
    wandb_project: str = 'owt'
    wandb_run_name: str = 'gpt2'
    # data
    dataset: str = 'openwebtext'
    data_root: str = 'data'  # datasets live in data_root/<dataset>/{train,val}.bin
    window_start: str = 'anywhere'  # 'document': every training, eval and probe window begins with a document's EOT (a BOS)
    gradient_accumulation_steps: int = 5 * 8  # in total over all ranks, as in nanoGPT
    batch_size: int = 12  # micro-batch size per rank
    # AdamW
    learning_rate: float = 6e-4
    max_iters: int = 600000
    weight_decay: float = 1e-1
    decay_embeddings: bool = True  # decay wte/lm_head (tied) and wpe too, as today's nanoGPT; False: Linear weights only, as the paper authors' runs
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    # learning rate: linear warmup then cosine decay to min_lr
    decay_lr: bool = True
    warmup_iters: int = 2000
    lr_decay_iters: int = 600000
    min_lr: float = 6e-5
    # system
    backend: str = 'auto'  # auto: nccl on CUDA, gloo on CPU
    dist_timeout: float = 30.0  # minutes any collective may wait, e.g. the other ranks while rank 0 writes a checkpoint (NCCL's default: 10)
    device: str = 'auto'  # auto, cpu, cuda, cuda:1, ...
    dtype: str = 'auto'  # auto: bfloat16 where the hardware has it (CUDA, or CPUs with AMX/AVX512-BF16), else float16 on CUDA / float32 on CPU
    compile: bool | None = None  # torch.compile; None: on for CUDA, off for CPU (inductor's CPU build takes minutes)
    parallelism: str = 'ddp'  # under torchrun: 'ddp' (every rank a whole model) or 'fsdp' (FSDP2: parameters, gradients and AdamW state sharded per block or decoder layer; parallel.py)
    activation_checkpointing: bool = False  # recompute each block's activations in backward: far less memory for ~1/3 more compute (docs/speed.md)
    fused_loss: bool = True  # lm_head + cross-entropy chunk by chunk, never the full logits (losses.py); False: nanoGPT's path
    seed: int = 1337
    # a lazy layer by construction (docs/lazy_layers.md): these layers start with every query's attention on the window's first token
    sink_layers: str = ''  # block indices or ranges ('6-7', '2,5'); '' = off. Learned position embeddings only (it marks position 0 in wpe)
    sink_eps: float = 0.01  # at init each query of a sink layer puts at most this much of its attention elsewhere
    sink_margin: float = 2.0  # the sink's logit gap at init, in multiples of the gap 1 - sink_eps needs; training dilutes it (docs/lazy_layers.md)
    sink_marker: float = 4.0  # the first position's marker, in token-embedding norms; hundreds make it dominate that position's LayerNorm as the stream grows


DEFAULTS = TrainConfig()


def get_lr(it, cfg):
    """Linear warmup for warmup_iters, cosine decay to min_lr at lr_decay_iters, then min_lr."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it > cfg.lr_decay_iters:
        return cfg.min_lr
    decay_ratio = (it - cfg.warmup_iters) / max(1, cfg.lr_decay_iters - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


def check_config(cfg):
    positive = ('eval_interval', 'log_interval', 'eval_iters', 'gradient_accumulation_steps', 'batch_size', 'block_size',
                'n_layer', 'n_head', 'n_embd')
    for key in positive:
        if getattr(cfg, key) < 1:
            fail(f"{key} must be at least 1, got {getattr(cfg, key)}")
    for key in ('max_iters', 'warmup_iters', 'lr_decay_iters', 'weight_decay', 'grad_clip', 'min_lr', 'probe_interval'):
        if getattr(cfg, key) < 0:
            fail(f"{key} must not be negative, got {getattr(cfg, key)}")
    if not 0 <= cfg.dropout < 1:
        fail(f"dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.learning_rate <= 0:
        fail(f"learning_rate must be positive, got {cfg.learning_rate}")
    if cfg.n_embd % cfg.n_head:
        fail(f"n_embd={cfg.n_embd} must be divisible by n_head={cfg.n_head}")
    if cfg.eval_windows is not None and cfg.eval_windows < 1:
        fail(f"eval_windows must be a positive integer or None (eval_iters * batch_size), got {cfg.eval_windows!r}")
    if cfg.dist_timeout <= 0:
        fail(f"dist_timeout must be a positive number of minutes, got {cfg.dist_timeout}")
    check_window_start(cfg.window_start)
    if cfg.parallelism not in parallel.PARALLELISMS:
        fail(f"parallelism={cfg.parallelism!r} is not one of {', '.join(parallel.PARALLELISMS)}")
    if not 0 <= cfg.kd_alpha <= 1 or cfg.kd_temperature <= 0:
        fail(f"kd_alpha must be in [0, 1] and kd_temperature positive, got {cfg.kd_alpha} and {cfg.kd_temperature}")


def build_model(cfg, data_vocab_size, device, meta=False):
    """The model to train, the checkpoint to resume (or None), the model's inheritance provenance (or None), and the
    weights that fill a model left on the meta device (or None).
    meta (FSDP): the model is built on the meta device without its weights, which come as a state dict read lazily
    (memory-mapped, or functions making one tensor at a time: common.tensor_of), so parallelize() fills each rank's
    shards without a full float32 copy on any rank: a resumed run, a checkpoint or HF folder started as it is, and an
    inheriting start, whose target is built there too. Built whole, as under DDP: sink_layers (it edits the weights),
    an inherit_select that probes the source (the whole source, on the training device), and a folder whose weights
    transformers renames on load. Weights None with a meta model: a sharded checkpoint fills it."""
    init_from, resume_ckpt, provenance, weights = cfg.init_from, None, None, None
    # a warm start's options are the inherit_* fields (inherit.py's InheritConfig, or a fork's own); any one set inherits
    inheriting = [f.name for f in dataclasses.fields(cfg) if f.name.startswith('inherit_') and getattr(cfg, f.name) != f.default]
    if init_from == 'scratch':
        if inheriting:
            fail(f"{inheriting[0]} needs a model to inherit from: set init_from to a checkpoint, run directory or gpt2*")
        model_args = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(GPTConfig)}
        if model_args['vocab_size'] is None:
            model_args['vocab_size'] = 64 * math.ceil(data_vocab_size / 64)
        model = GPT(GPTConfig(**model_args))
    elif init_from == 'resume':
        resume_ckpt = load_checkpoint(os.path.join(cfg.out_dir, 'ckpt.pt'), map_location='cpu' if meta else device, mmap=meta)
        if 'optimizer' not in resume_ckpt and 'sharded' not in resume_ckpt:
            fail(f"{cfg.out_dir}/ckpt.pt has no optimizer state, so it cannot be resumed; use --init_from=PATH to start from its weights")
        resume_ckpt['model_args']['dropout'] = cfg.dropout  # the shape comes from the checkpoint, dropout from the config (nanoGPT)
        model, provenance = model_from_checkpoint(resume_ckpt, cfg.out_dir, meta=meta), resume_ckpt.get('inherit')
        if meta and 'sharded' not in resume_ckpt:
            weights = resume_ckpt['model']
    else:
        lazy = meta and not cfg.sink_layers and not selection_named(cfg.inherit_select).needs
        model, info = load_model(init_from, device, cfg.model_path, meta=lazy)  # on the training device: an inherit_select probe runs there
        weights, provenance = info['weights'], info.get('inherit')
        if inheriting:
            if weights is None:
                ckpt = inherit(model, info, cfg)
                model, provenance = model_from_checkpoint(ckpt, init_from), ckpt['inherit']
            else:
                model, weights, ckpt = inherited_weights(model, info, cfg)
                provenance = ckpt['inherit']
        if isinstance(model, HFModel):
            if cfg.dropout:
                fail(f"dropout={cfg.dropout} is a setting of model.py's GPT; {init_from} runs through transformers "
                     f"({model.config.architecture}), whose config sets its own dropout")
        elif model.config.dropout != cfg.dropout:
            with torch.device('meta') if weights is not None else nullcontext():
                rebuilt = GPT(dataclasses.replace(model.config, dropout=cfg.dropout))
            if weights is None:
                rebuilt.load_state_dict(model.state_dict())
            model = rebuilt
        if cfg.block_size < model.config.block_size:
            model.crop_block_size(cfg.block_size)
            if weights is not None and 'transformer.wpe.weight' in weights:
                weights['transformer.wpe.weight'] = partial(first_rows, weights['transformer.wpe.weight'], cfg.block_size)
    if cfg.block_size > model.config.block_size:
        fail(f"block_size={cfg.block_size} is larger than the model's context ({model.config.block_size}); lower --block_size")
    if cfg.sink_layers and init_from != 'resume':
        collapse_to_sink(model, parse_layers(cfg.sink_layers, 'sink_layers'), cfg.sink_eps, cfg.sink_margin, cfg.sink_marker)
    return model, resume_ckpt, provenance, weights


def first_rows(weight, n):
    """The first n rows of a lazily read weight (a cropped wpe)."""
    return tensor_of(weight)[:n]


@torch.no_grad()
def collapse_to_sink(model, layers, eps, margin, marker_size):
    """Start `layers` eps-sink-collapsed (PAPER.md §6, App. H): every query puts >= 1 - eps of its attention on the
    window's first token, through weights that train like any others. Two residual dimensions are set aside: wpe
    writes a marker m (dimension C-1, marker_size token-embedding norms) at position 0 only and a constant b
    (dimension C-2) at every position, and wte writes neither (so the tied lm_head reads neither). In each sink
    layer the first dimension of every head's query reads b and of its key reads m with weight w, so after the
    LayerNorm the logit of (query i, key 0) exceeds every other key's by about scale * w^2 * b_i * m_0, which w sets
    to `margin` times the gap that 1 - eps needs over block_size keys. As the rest of the stream grows, the LayerNorm
    shrinks b_i and m_0 and the gap with them: a larger margin lasts through more of that growth, and a marker of
    hundreds of embedding norms keeps position 0's LayerNorm output on the marker however the rest of its stream
    grows (as the massive activations of trained models do)."""
    config, wpe, wte = model.config, model.transformer.wpe, model.transformer.wte
    if wpe is None:
        fail("sink_layers marks the first position in the position embeddings, and a RoPE model has none")
    bad = [l for l in layers if not 0 <= l < config.n_layer]
    if bad:
        fail(f"sink_layers: layer {bad[0]} is out of range: the model has {config.n_layer} layers, numbered 0-{config.n_layer - 1}")
    if not 0 < eps < 1:
        fail(f"sink_eps must be in (0, 1), got {eps}")
    if marker_size <= 0:
        fail(f"sink_marker must be positive, got {marker_size}")
    if margin < 1:
        fail(f"sink_margin must be >= 1 (below 1 the sink layers start with more than sink_eps off the first token), got {margin}")
    C, T, marker, constant = config.n_embd, config.block_size, config.n_embd - 1, config.n_embd - 2
    content = (wte.weight.square().sum(1).mean() + wpe.weight.square().sum(1).mean()).sqrt()  # a token's embedding norm
    wte.weight[:, [marker, constant]] = 0
    wpe.weight[:, marker] = 0
    wpe.weight[0, marker] = marker_size * content  # position 0's LayerNorm output: m_0 sqrt(C) on the marker
    wpe.weight[:, constant] = content  # every other position's: ~0.7 sqrt(C) on the constant
    m_0 = marker_size / math.sqrt(marker_size ** 2 + 2)  # 0.94 for the default 4: the marker against content and constant
    gap = margin * math.log((T - 1) * (1 - eps) / eps)
    for l in layers:
        block = model.transformer.h[l]
        attn = block.attn
        block.ln_1.weight[[marker, constant]] = 1
        if getattr(block.ln_1, 'bias', None) is not None:  # RMSNorm has none
            block.ln_1.bias[[marker, constant]] = 0
        w = math.sqrt(gap / (attn.scale * 0.7 * m_0 * C))
        attn.c_attn.weight[torch.arange(attn.n_head) * attn.head_dim, constant] = w  # queries
        attn.c_attn.weight[C + torch.arange(attn.n_kv_head) * attn.head_dim, marker] = w  # keys


def load_teacher(source, device, model_path):
    """The frozen KD teacher (eval mode, no gradients) and the tokenizer it reads (checkpoint.tokenizer_meta)."""
    teacher, info = load_model(source, device, model_path)
    teacher.eval().requires_grad_(False)
    return teacher, tokenizer_meta(info)['tokenizer']


def padded_apart(teacher_tokenizer, meta, *vocab_sizes):
    """Whether vocabularies of these sizes differ only by padding rows (Qwen2.5 0.5B's 151,936 and 7B's 152,064): the
    teacher reads the tokenizer.json the data were written in (the same token at every id), whose ids fit in each."""
    if not (is_tokenizer_folder(meta['tokenizer']) and is_tokenizer_folder(teacher_tokenizer)):
        return False
    vocab = hf_tokenizer(meta['tokenizer'])[0].get_vocab(with_added_tokens=True)
    return vocab == hf_tokenizer(teacher_tokenizer)[0].get_vocab(with_added_tokens=True) and meta['vocab_size'] <= min(vocab_sizes)


def check_teacher(teacher, teacher_tokenizer, model, meta, source):
    """The teacher must predict the student's vocabulary over at least its context; cropped to the student's. The
    vocab sizes may differ by padding rows only (padded_apart), which KD leaves out (losses.distillation)."""
    if not teacher.plain_logits and int(os.environ.get('RANK', 0)) == 0:
        print(f"note: teacher {source}'s logits are not lm_head(final hidden state) ({teacher.config.architecture}: a "
              "softcap, a logit scale or an lm_head bias), so KD reads its own logits and the step takes the plain loss")
    t, s = teacher.config, model.config
    same_vocabulary = t.vocab_size == s.vocab_size or padded_apart(teacher_tokenizer, meta, t.vocab_size, s.vocab_size)
    if not same_vocabulary or t.block_size < s.block_size:
        fail(f"teacher {source} has vocab_size {t.vocab_size} and block_size {t.block_size}, the student {s.vocab_size} and "
             f"{s.block_size}; a teacher needs the same vocabulary (sizes may differ only by padding past the ids of the "
             "tokenizer.json that the teacher and the data share) and at least the student's block_size")
    if t.block_size > s.block_size:
        teacher.crop_block_size(s.block_size)


def train_step(model, optimizer, scaler, autocast, batches, grad_clip, ddp=False, loss_spec=LossSpec(), teacher=None):
    """One optimizer step over the micro-batches [(X, Y), ...]; returns the mean loss and {term: mean} over them
    (tensors: no device sync). loss_spec: the loss's terms and settings (losses.py); teacher: a frozen GPT whose final
    hidden states and lm_head weight go into the spec of each micro-batch for knowledge distillation (its own logits
    where they are not lm_head(final hidden state)), or None."""
    sums = 0.0
    for i, (X, Y) in enumerate(batches):
        # with several processes (DDP or FSDP), reduce the gradients only once per step, after the last micro-batch
        sync = not ddp or i == len(batches) - 1
        with (nullcontext() if sync else parallel.no_sync(model)), autocast:
            spec = loss_spec
            if teacher is not None:
                with torch.no_grad():
                    spec = (dataclasses.replace(loss_spec, teacher_hidden=teacher.final_hidden(X),
                                                teacher_weight=teacher.lm_head.weight) if teacher.plain_logits
                            else dataclasses.replace(loss_spec, fused=False, teacher_logits=teacher.logits(X)))
            _, loss, terms = model(X, Y, loss_spec=spec)
        # the terms come in TERMS order every micro-batch, so one stacked tensor sums them all
        sums = sums + torch.stack([loss.detach(), *terms.values()]).float() / len(batches)
        scaler.scale(loss / len(batches)).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return sums[0], dict(zip(terms, sums[1:]))


@dataclass
class Setup:
    """Where this process trains: its rank among the processes (DDP or FSDP), its device, and the autocast it runs under."""
    ddp: bool  # several processes
    rank: int
    world_size: int
    device: str
    device_type: str
    ptdtype: torch.dtype
    autocast: object

    @property
    def master(self):
        return self.rank == 0


@dataclass
class LoopState:
    """Where the training loop is. With the scaler it is what a checkpoint carries besides the weights and the
    optimizer (the Checkpointer's); save_state() and restore_state() are the one pair that writes and reads it."""
    data_gen: torch.Generator  # draws every step's batch offsets, the same on every rank
    iter_num: int = 0
    best_val_loss: float = 1e9


def save_state(state, scaler, setup):
    """The checkpoint entries of the loop state and the scaler: iter_num, best_val_loss, scaler and rng (the data
    generator's state and every rank's torch/CUDA RNG). Every rank must call it."""
    rng = {'data': state.data_gen.get_state(), 'torch': [torch.get_rng_state()],
           'cuda': [torch.cuda.get_rng_state()] if setup.device_type == 'cuda' else []}
    if setup.ddp:  # every rank's dropout RNG, so a resumed run on as many processes continues exactly
        gathered = [None] * setup.world_size
        dist.all_gather_object(gathered, (rng['torch'][0], rng['cuda']))
        rng['torch'] = [g[0] for g in gathered]
        rng['cuda'] = [c for g in gathered for c in g[1]]
    return {'scaler': scaler.state_dict(), 'iter_num': state.iter_num, 'best_val_loss': state.best_val_loss, 'rng': rng}


def restore_state(ckpt, state, scaler, setup, dropout):
    """Put what save_state() wrote back into the loop state and the scaler of this rank."""
    if 'scaler' in ckpt:
        scaler.load_state_dict(ckpt['scaler'])
    state.iter_num, state.best_val_loss = ckpt['iter_num'], float(ckpt['best_val_loss'])
    rng = ckpt.get('rng')
    if rng is None:
        if setup.master:
            print("note: this checkpoint has no RNG state (nanoGPT?), so the resumed data order differs from an uninterrupted run")
        return
    # every rank draws the same global batch, so only dropout's per-rank streams depend on the number of processes
    writers = len(rng['torch'])
    if writers != setup.world_size and dropout > 0 and setup.master:
        print(f"note: the checkpoint was written by {writers} process(es), this run has {setup.world_size}: dropout draws "
              "other masks, so the continuation is not bit-exact")
    # RNG states must be CPU byte tensors; the checkpoint was loaded onto the training device
    state.data_gen.set_state(rng['data'].cpu())
    torch.set_rng_state(rng['torch'][setup.rank % writers].cpu())
    if setup.device_type == 'cuda' and rng.get('cuda'):
        torch.cuda.set_rng_state(rng['cuda'][setup.rank % len(rng['cuda'])].cpu())


@torch.no_grad()
def estimate_loss(model, splits, batch_size, block_size, setup):
    """Mean loss over the fixed windows of each split {name: (tokens, window offsets)}; the windows are split across
    ranks and the sums all-reduced."""
    out = {}
    model.eval()
    for split, (data, windows) in splits.items():
        mine = windows[setup.rank::setup.world_size]
        total = torch.zeros(2, device=setup.device, dtype=torch.float64)  # loss sum, window count
        # every rank runs as many batches (an FSDP forward gathers from all ranks): one short of windows counts none
        for i in range(0, len(windows[::setup.world_size]), batch_size):
            batch = mine[i:i + batch_size]
            X, Y = get_batch(data, batch if len(batch) else windows[:1], block_size, setup.device)
            with setup.autocast:
                _, loss = model(X, Y)
            total += torch.tensor([loss.item() * len(batch), len(batch)], device=setup.device, dtype=torch.float64)
        if setup.ddp:
            dist.all_reduce(total)
        out[split] = (total[0] / total[1]).item()
    model.train()
    return out


class MetricsLog:
    """metrics.jsonl in out_dir (and wandb, if asked), written by rank 0 only."""

    def __init__(self, cfg, setup, resume_iter):
        self.path = os.path.join(cfg.out_dir, 'metrics.jsonl')
        self.enabled, self.wandb = setup.master and not cfg.eval_only, None
        if not self.enabled:
            return
        os.makedirs(cfg.out_dir, exist_ok=True)
        keep_metrics_before(self.path, resume_iter)
        if cfg.wandb_log:
            try:
                import wandb
            except ImportError:
                fail("wandb_log=True but wandb is not installed; pip install wandb or set --wandb_log=False")
            wandb.init(project=cfg.wandb_project, name=cfg.wandb_run_name, config=dataclasses.asdict(cfg))
            self.wandb = wandb

    def write(self, record):
        if self.enabled:
            with open(self.path, 'a') as f:
                f.write(json.dumps(record) + '\n')
            if self.wandb is not None:
                self.wandb.log(record)


class Clock:
    """The run's wall time, and the time left at the mean pace so far of its steps and of its evaluations."""

    def __init__(self, t_start, start_iter, cfg):
        self.t_start, self.t_loop = t_start, time.time()
        self.start_iter, self.max_iters, self.eval_interval = start_iter, cfg.max_iters, cfg.eval_interval
        self.eval_s, self.evals = 0.0, 0

    def add_eval(self, seconds):
        self.eval_s, self.evals = self.eval_s + seconds, self.evals + 1

    def progress(self, iter_num):
        """'elapsed 42s, ETA 3m07s'; no ETA before the first step."""
        elapsed = f"elapsed {duration(time.time() - self.t_start)}"
        if iter_num == self.start_iter:
            return elapsed
        step_s = (time.time() - self.t_loop - self.eval_s) / (iter_num - self.start_iter)
        evals_left = (self.max_iters - 1) // self.eval_interval - (iter_num - 1) // self.eval_interval + 1  # + the final one
        left = step_s * (self.max_iters - iter_num) + self.eval_s / max(1, self.evals) * evals_left
        return f"{elapsed}, ETA {duration(left)}"


class Checkpointer:
    """Writes and resumes out_dir/ckpt.pt: the weights, the optimizer, save_state()'s entries, and what describes the
    run (model_args, config, inheritance provenance, eval windows). A sharded (FSDP) model saves its weights and
    optimizer state sharded and asynchronously (parallel.ShardedCheckpoint), ckpt.pt then holding the consolidated
    weights and the rest. Either kind resumes on any number of processes, with or without FSDP."""

    def __init__(self, path, model, optimizer, scaler, setup, extras):
        self.path, self.model, self.optimizer, self.scaler, self.setup, self.extras = path, model, optimizer, scaler, setup, extras
        self.sharded = parallel.ShardedCheckpoint(path) if parallel.is_sharded(model) else None

    def save(self, state):
        entries = {**save_state(state, self.scaler, self.setup), **self.extras}  # every rank: it gathers their RNG states
        if self.sharded is not None:
            self.sharded.save(self.model, self.optimizer, entries)  # returns before it is on disk
            return
        if self.setup.master:
            save_checkpoint({'model': self.model.state_dict(), 'optimizer': self.optimizer.state_dict(), **entries}, self.path)
        if self.setup.ddp:
            dist.barrier()  # the other ranks wait here (dist_timeout), not in the next step's all-reduce

    def wait(self):
        """Return once the last save is on disk, on every rank (grow.py reads it next)."""
        if self.sharded is not None:
            self.sharded.wait()
            dist.barrier()

    def load(self, ckpt, state):
        """Resume from ckpt, a checkpoint this class (or nanoGPT) wrote: the optimizer, the loop state, and the
        weights where they are sharded (a single file's are in the model already: build_model)."""
        saved = ckpt.get('config', {}).get('decay_embeddings', True)
        regrouped = (saved != self.extras['config']['decay_embeddings'] if 'sharded' in ckpt else
                     [len(g['params']) for g in ckpt['optimizer']['param_groups']] != [len(g['params']) for g in self.optimizer.param_groups])
        if regrouped:
            fail(f"{self.path} groups its parameters for weight decay otherwise (decay_embeddings={saved}); "
                 f"resume it with --decay_embeddings={saved}")
        if 'sharded' in ckpt:
            parallel.load_sharded(ckpt, self.path, self.model, self.optimizer)
        else:
            parallel.load_optimizer(self.model, self.optimizer, ckpt['optimizer'])
        restore_state(ckpt, state, self.scaler, self.setup, self.extras['config']['dropout'])


def evaluate_and_save(cfg, state, eval_splits, setup, metrics, clock, checkpointer):
    """Evaluate on the fixed windows, log, and save a checkpoint when the val loss improved (or always_save_checkpoint)."""
    t_eval = time.time()
    losses = estimate_loss(checkpointer.model, eval_splits, cfg.batch_size, cfg.block_size, setup)
    if setup.master:
        print(f"step {state.iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}, {clock.progress(state.iter_num)}")
    if not all(math.isfinite(v) for v in losses.values()):
        fail(f"the loss became {losses['val']} at step {state.iter_num}; the last good checkpoint in {cfg.out_dir} is left as it was. "
             "Lower learning_rate or use --dtype=bfloat16/float32")
    metrics.write({'iter': state.iter_num, 'train_loss': losses['train'], 'val_loss': losses['val'], 'lr': get_lr(state.iter_num, cfg)})
    improved = losses['val'] < state.best_val_loss
    state.best_val_loss = min(state.best_val_loss, losses['val'])
    # not the untrained model before the first step, unless that is the run: max_iters=0 evaluates a warm start as built
    if (improved or cfg.always_save_checkpoint) and (state.iter_num > 0 or cfg.max_iters == 0):
        checkpointer.save(state)
    clock.add_eval(time.time() - t_eval)
    return losses


# what probe_interval logs of every layer: attention_probe.METRICS names
PROBE_METRICS = ('max_rank', 'avg_mass', 'block_influence', 'attention_sink')


def probe_and_log(model, val_data, val_starts, cfg, state, setup, metrics):
    """Rank 0 probes the model being trained on the probe's fixed val windows (among val_starts, window_starts()'s
    offsets, unless that is None) and logs PROBE_METRICS per layer; a sharded model through an unsharded copy. Eval
    mode and no RNG drawn (the windows are fixed, dropout is off), so training goes on as if it had not happened."""
    if parallel.is_sharded(model):
        model = parallel.replica(model, setup.device)  # every rank gathers its shards to rank 0
    if not setup.master:
        return
    t0 = time.time()
    settings = attention_probe.fitted_settings(cfg.block_size)
    measurements = attention_probe.Measurements(model, val_data, settings, setup.device, progress=False,  # one line below
                                                starts=val_starts)
    measured = measurements.metrics(PROBE_METRICS)
    model.train()
    values = {name: result['per_layer'] for name, result in measured.items()}
    probe_s = time.time() - t0
    print(f"step {state.iter_num}: probe MaxRank {' '.join(f'{v:.1f}' for v in values['max_rank'])}, "
          f"BI {' '.join(f'{v:.3f}' for v in values['block_influence'])} ({probe_s:.1f}s)")
    metrics.write({'iter': state.iter_num, 'probe': values, 'probe_s': probe_s})


def train(cfg):
    """Run one training (or eval_only) job described by cfg, a TrainConfig. Every rank calls it.
    Returns {'val_loss', 'train_loss', 'best_val_loss', 'iter_num', 'tokens', 'wall_s'} from the final evaluation."""
    t_start = time.time()
    check_config(cfg)

    # ---- setup: processes, device, data, the model (and teacher), optimizer
    ddp, rank, _, world_size, dev = init_distributed(cfg.backend, cfg.device, cfg.dist_timeout)
    setup = Setup(ddp, rank, world_size, *setup_device(dev, cfg.dtype))
    grad_accum = cfg.gradient_accumulation_steps
    if grad_accum % world_size:
        fail(f"gradient_accumulation_steps={grad_accum} must be a multiple of the number of processes ({world_size})")
    micro_steps = grad_accum // world_size  # this rank's share of each iteration's micro-batches
    tokens_per_iter = grad_accum * cfg.batch_size * cfg.block_size

    data_dir = os.path.join(cfg.data_root, cfg.dataset)
    meta = load_meta(data_dir)
    train_data, val_data = open_tokens(data_dir, 'train'), open_tokens(data_dir, 'val')
    for split, tokens in (('train', train_data), ('val', val_data)):
        check_fits(len(tokens), cfg.block_size, f"the {split} split of {data_dir}")  # before a model that size is built
    starts = {split: window_starts(tokens, meta, cfg.window_start, cfg.block_size, f"the {split} split of {data_dir}")
              for split, tokens in (('train', train_data), ('val', val_data))}  # None: windows start anywhere

    fsdp = ddp and cfg.parallelism == 'fsdp'
    if fsdp and setup.ptdtype == torch.float16:
        fail("parallelism='fsdp' trains in bfloat16 or float32 (float16 would need a sharded GradScaler); use --dtype=bfloat16")
    # before seeding: building a GPT draws
    teacher, teacher_tokenizer = load_teacher(cfg.teacher, setup.device, cfg.model_path) if cfg.teacher else (None, None)
    if teacher is not None and fsdp and setup.ptdtype == torch.bfloat16:
        teacher.to(torch.bfloat16)  # replicated on every rank, so in the dtype its forward computes in: half the memory
    torch.manual_seed(cfg.seed + (0 if fsdp else rank))  # FSDP shards one model: every rank builds rank 0's
    model, resume_ckpt, provenance, weights = build_model(cfg, meta['vocab_size'], setup.device, meta=fsdp)
    if fsdp and rank:
        torch.manual_seed(cfg.seed + rank)  # dropout draws a stream of its own on every rank, as under DDP
    if teacher is not None:
        check_teacher(teacher, teacher_tokenizer, model, meta, cfg.teacher)
    model_args = model.config.model_args()
    if meta['vocab_size'] > model.config.vocab_size:
        fail(f"dataset {cfg.dataset} has token ids up to {meta['vocab_size']} but the model's vocab_size is "
             f"{model.config.vocab_size}; prepare the data with the model's own tokenizer (prepare_*.py --tokenizer=DIR) "
             "or pick a larger vocab_size")
    if setup.master and cfg.init_from not in ('scratch', 'resume'):
        differing = [k for k in ('n_layer', 'n_head', 'n_embd') if getattr(cfg, k) not in (model_args[k], getattr(DEFAULTS, k))]
        if differing:
            print(f"note: the model shape comes from init_from; config values for {differing} are ignored")

    # ---- compile, and wrap the model that trains for this run's processes (parallel.py); raw_model is what is
    # evaluated and saved (under FSDP the same module)
    raw_model = model
    use_compile = cfg.compile if cfg.compile is not None else setup.device_type == 'cuda'
    if use_compile:
        if setup.master:
            print("compiling the model with torch.compile: the first steps take a while (--compile=False to skip)")
        # each call compiles a new model (grow.py: one depth per round); graphs of earlier ones would count against
        # dynamo's recompile limit, past which it silently runs eager
        torch._dynamo.reset()
        if teacher is not None:
            teacher.final_hidden = torch.compile(teacher.final_hidden)
    blocks = raw_model.blocks if isinstance(raw_model, HFModel) else raw_model.transformer.h
    model = parallel.parallelize(raw_model, blocks, setup, cfg.parallelism, use_compile, cfg.activation_checkpointing,
                                 weights)
    del weights  # unmap the source
    scaler = torch.amp.GradScaler(setup.device_type, enabled=(setup.ptdtype == torch.float16))
    # after the wrap: under FSDP the optimizer holds this rank's shards
    optimizer = raw_model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), setup.device_type,
                                               decay_embeddings=cfg.decay_embeddings)
    # every rank draws the offsets of the whole global batch from the same generator and keeps its own share, so a
    # run's data does not depend on the number of processes
    state = LoopState(torch.Generator().manual_seed(cfg.seed))

    # ---- the fixed evaluation windows, and what identifies them (results.py tells runs on other windows apart)
    n_windows = cfg.eval_windows or cfg.eval_iters * cfg.batch_size
    val_windows = fixed_windows(len(val_data), cfg.block_size, n_windows, starts=starts['val'])
    eval_splits = {'train': (train_data, fixed_windows(len(train_data), cfg.block_size, n_windows, starts=starts['train'])),
                   'val': (val_data, val_windows)}
    eval_set = {'dataset': cfg.dataset, 'val_tokens': len(val_data), 'block_size': cfg.block_size, 'windows': n_windows,
                'offsets_sha1': hashlib.sha1(val_windows.tobytes()).hexdigest()[:12]}
    checkpointer = Checkpointer(os.path.join(cfg.out_dir, 'ckpt.pt'), raw_model, optimizer, scaler, setup,
                                {'model_args': model_args, 'config': dataclasses.asdict(cfg), 'inherit': provenance,
                                 'eval_set': eval_set})

    # ---- resume
    if resume_ckpt is not None:
        checkpointer.load(resume_ckpt, state)
        del resume_ckpt  # free the memory

    if cfg.eval_only:
        losses = estimate_loss(raw_model, eval_splits, cfg.batch_size, cfg.block_size, setup)
        if setup.master:
            print(f"{cfg.init_from}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} "
                  f"({len(val_windows)} fixed windows of {cfg.block_size} tokens)")
        return {'val_loss': losses['val'], 'train_loss': losses['train'], 'best_val_loss': losses['val'],
                'iter_num': state.iter_num, 'tokens': 0, 'wall_s': time.time() - t_start}

    metrics = MetricsLog(cfg, setup, state.iter_num if cfg.init_from == 'resume' else 0)
    if setup.master:
        print(f"{raw_model.get_num_params() / 1e6:.2f}M parameters, {tokens_per_iter:,} tokens per iteration "
              f"({grad_accum} x {cfg.batch_size} x {cfg.block_size}), {world_size} process(es), {setup.device}, {setup.ptdtype}")
        if peak_flops(torch.device(setup.device), setup.ptdtype) is None:
            name = torch.cuda.get_device_name(setup.device) if setup.device_type == 'cuda' else setup.device_type
            print(f"note: MFU is not reported: no known peak FLOP/s for {name} (see GPU_PEAK_FLOPS in model.py)")

    # ---- the loop
    clock = Clock(t_start, state.iter_num, cfg)
    start_iter = state.iter_num
    loss_spec = LossSpec(fused=cfg.fused_loss, kd_alpha=cfg.kd_alpha, kd_temperature=cfg.kd_temperature, settings=cfg)
    t_log, iters_since_log, next_timed_log = time.time(), 0, state.iter_num + 1  # DDP logs the first step, to learn the pace
    while state.iter_num < cfg.max_iters:
        evaluating = state.iter_num % cfg.eval_interval == 0
        probing = cfg.probe_interval > 0 and state.iter_num % cfg.probe_interval == 0
        if evaluating:
            evaluate_and_save(cfg, state, eval_splits, setup, metrics, clock, checkpointer)
        if probing:
            probe_and_log(raw_model, val_data, starts['val'], cfg, state, setup, metrics)
        if evaluating or probing:
            t_log, iters_since_log = time.time(), 0  # don't count eval or probe time in the step timings
        lr = get_lr(state.iter_num, cfg)
        for group in optimizer.param_groups:
            group['lr'] = lr
        if starts['train'] is None:
            offsets = torch.randint(len(train_data) - cfg.block_size, (grad_accum, cfg.batch_size), generator=state.data_gen)
        else:
            picks = torch.randint(len(starts['train']), (grad_accum, cfg.batch_size), generator=state.data_gen)
            offsets = torch.from_numpy(starts['train'])[picks]
        batches = [get_batch(train_data, offsets[rank * micro_steps + i].numpy(), cfg.block_size, setup.device) for i in range(micro_steps)]
        step_loss, step_terms = train_step(model, optimizer, scaler, setup.autocast, batches, cfg.grad_clip, ddp, loss_spec, teacher)
        state.iter_num += 1
        iters_since_log += 1

        # a line at least every log_seconds: one process reads the clock; DDP ranks must all decide alike (the line
        # all-reduces), so they log after as many steps as fit in log_seconds at rank 0's last pace
        timed = state.iter_num >= next_timed_log if ddp else time.time() - t_log >= cfg.log_seconds
        if state.iter_num % cfg.log_interval == 0 or state.iter_num == cfg.max_iters or (cfg.log_seconds > 0 and timed):
            means = torch.stack([step_loss, *step_terms.values()])
            if ddp:
                dist.all_reduce(means)  # gloo has no AVG
            lossf, *term_values = (means / world_size).tolist()  # syncs with the device, so the timing below is real
            # a lone term (plain CE) is the loss itself; with more, each is printed and logged by name
            terms = dict(zip(step_terms, term_values)) if len(step_terms) > 1 else {}
            if not math.isfinite(lossf):
                fail(f"training loss became {lossf} at step {state.iter_num}; the last good checkpoint in {cfg.out_dir} is left as it was. "
                     "Lower learning_rate or use --dtype=bfloat16/float32")
            dt = (time.time() - t_log) / iters_since_log
            t_log, iters_since_log = time.time(), 0
            if ddp:
                pace = torch.tensor([dt], device=setup.device)
                dist.broadcast(pace, 0)
                next_timed_log = state.iter_num + max(1, int(cfg.log_seconds / pace.item()))
            mfu = raw_model.estimate_mfu(cfg.batch_size * micro_steps, dt, setup.ptdtype, teacher)
            if setup.master:
                terms_text = f" ({', '.join(f'{k} {v:.4f}' for k, v in terms.items())})" if terms else ""
                mfu_text = "" if mfu is None else f", mfu {mfu * 100:.1f}%" + (" incl. the teacher's forward" if teacher is not None else "")
                print(f"iter {state.iter_num}: loss {lossf:.4f}{terms_text}, lr {lr:.3e}, {dt * 1000:.1f} ms/iter, "
                      f"{tokens_per_iter / dt:,.0f} tok/s{mfu_text}, {clock.progress(state.iter_num)}")
            metrics.write({'iter': state.iter_num, 'loss': lossf, 'lr': lr, 'ms_per_iter': dt * 1000, 'tokens_per_s': tokens_per_iter / dt,
                           'mfu': mfu, **terms})
    losses = evaluate_and_save(cfg, state, eval_splits, setup, metrics, clock, checkpointer)
    checkpointer.wait()  # every rank, until the checkpoint is written (grow.py reads it)
    if cfg.probe_interval > 0 and state.iter_num % cfg.probe_interval == 0:
        probe_and_log(raw_model, val_data, starts['val'], cfg, state, setup, metrics)
    if cfg.probe_interval > 0 and setup.master:
        attention_probe.plot_history(metrics.path, os.path.join(cfg.out_dir, 'probe_history.png'),
                                     f"{cfg.out_dir}: probe every {cfg.probe_interval} steps")
    return {'val_loss': losses['val'], 'train_loss': losses['train'], 'best_val_loss': state.best_val_loss,
            'iter_num': state.iter_num, 'tokens': (state.iter_num - start_iter) * tokens_per_iter, 'wall_s': time.time() - t_start}


def duration(seconds):
    """42s, 3m07s, 2h05m"""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def keep_metrics_before(path, iter_num):
    """Drop the metric lines a run resumed at iter_num will log again (steps after it, its evaluations and probes
    from it on) and any line cut short by a kill."""
    if not os.path.exists(path):
        return
    kept = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record['iter'] < iter_num or (record['iter'] == iter_num and 'loss' in record):  # the step that led to iter_num
                kept.append(line if line.endswith('\n') else line + '\n')
    with atomic_write(path) as tmp, open(tmp, 'w') as f:
        f.writelines(kept)


if __name__ == '__main__':
    result = train(configure(TrainConfig, sys.argv[1:]))
    if dist.is_initialized():
        dist.destroy_process_group()
