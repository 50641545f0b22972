"""GPT-2 in one file, nanoGPT-compatible (same module names and state-dict keys), and the Llama family (Llama 2 and 3,
Qwen2, Qwen3) as settings of the same GPT: RMSNorm, RoPE (with Llama 3's scaling), SwiGLU, grouped-query attention, an
untied lm_head, q/k/v biases, a head size apart from n_embd / n_head and per-head q/k norms.

Differences from nanoGPT that matter for Inheritune:
- GELU is GPT-2's tanh approximation, so imported Hugging Face GPT-2 weights give the same logits (checkpoints
  written by nanoGPT, which uses the exact GELU, keep theirs: gelu_approximate='none'; GPTConfig.from_dict tells
  them from the paper authors' fork, which uses the tanh GELU).
- scale_attn_by_inverse_layer_idx divides block i's attention logits by an extra (i+1), as HF GPT-2 and the
  paper's models do.
- The Llama settings keep GPT-2's module names: c_attn stacks q, k and v (k and v with n_kv_head heads each), c_fc
  stacks SwiGLU's gate and up projections; hf_llama.py maps Hugging Face's Llama, Qwen2 and Qwen3 weights onto them.
- An explicit attention path hands every layer's post-softmax attention matrix to a hook, and hidden_states yields
  the residual stream between blocks, for the layer metrics of attention_probe.py.
"""
import inspect
import math
import os
from contextlib import nullcontext
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
from torch.nn import functional as F

from common import fail
from losses import fused_loss, plain_loss

# On CPU, bf16 attention over at most this many tokens runs in float32: torch's CPU flash attention (fwd + bwd)
# took 2.7-3.3x longer in bf16 than in float32 at 128 tokens, about the same at 256, and less from 512 on
CPU_FP32_ATTENTION_T = 256

# the Llama family's fields: model_args name them only where they differ from their (GPT-2's) defaults, so a GPT-2's
# model_args stay what they were before these fields, which code and checkpoints of that time read
LLAMA_FIELDS = ("norm", "norm_eps", "position", "rope_theta", "mlp", "mlp_hidden", "n_kv_head", "tie_embeddings", "qkv_bias",
                "head_dim", "qk_norm", "rope_scaling")
# the settings of Llama 3.1+'s RoPE scaling, {'rope_type': 'llama3', ...} in rope_scaling, as Hugging Face names them
LLAMA3_SCALING = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


@dataclass
class GPTConfig:
    """The model's fields: the one list of them. train.py's settings extend this class, so a new field here is a
    train.py setting, a checkpoint's model_args entry and an inherited model's field at once."""
    block_size: int = 1024  # context length; the position embeddings' size
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64 for speed
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linears and LayerNorms, like GPT-2; False is a bit better and faster
    scale_attn_by_inverse_layer_idx: bool = False  # divide block i's attention logits by i + 1, as the paper's models
    gelu_approximate: str = "tanh"  # GPT-2's tanh GELU; "none" is the exact erf GELU that nanoGPT uses
    # the Llama family's settings (LLAMA_FIELDS); the defaults are GPT-2's
    norm: str = "layernorm"  # "rmsnorm": Llama's RMSNorm (a gain, never a bias)
    norm_eps: float = 1e-5  # epsilon of every norm (Llama: 1e-5 or 1e-6)
    position: str = "learned"  # GPT-2's position embeddings (wpe); "rope": rotary q and k (Llama), no wpe
    rope_theta: float = 10000.0  # RoPE's base wavelength (Llama 3 and Qwen2 use 500000 and 1000000)
    mlp: str = "gelu"  # "swiglu": Llama's c_proj(silu(gate) * up) with gate and up stacked in c_fc
    mlp_hidden: int | None = None  # the MLP's hidden width; None: 4 * n_embd
    n_kv_head: int | None = None  # key/value heads, each shared by n_head / n_kv_head query heads (GQA); None: n_head
    tie_embeddings: bool = True  # lm_head's weight is wte's, as in GPT-2; False: its own (most Llamas)
    qkv_bias: bool | None = None  # biases in c_attn; None: as bias (Qwen2: True with bias=False)
    head_dim: int | None = None  # each head's width; None: n_embd // n_head (Qwen3 0.6B: 128 with n_embd 1024, 16 heads)
    qk_norm: bool = False  # Qwen3: an RMSNorm over each head's q and k (gains shared by the heads) before RoPE
    rope_scaling: dict | None = None  # None: plain RoPE; Llama 3.1+: {'rope_type': 'llama3', 'factor': 32.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192}

    def __post_init__(self):
        choices = {"norm": ("layernorm", "rmsnorm"), "position": ("learned", "rope"), "mlp": ("gelu", "swiglu")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                fail(f"{key}={getattr(self, key)!r} is not one of {', '.join(allowed)}")
        if self.n_kv_head is not None and (self.n_kv_head < 1 or self.n_head % self.n_kv_head):
            fail(f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head} (or be None: as many as n_head)")
        if self.mlp_hidden is not None and self.mlp_hidden < 1:
            fail(f"mlp_hidden must be a positive integer or None (4 * n_embd), got {self.mlp_hidden}")
        if self.head_dim is not None and self.head_dim < 1:
            fail(f"head_dim must be a positive integer or None (n_embd // n_head), got {self.head_dim}")
        if self.position == "rope" and self.n_head > 0 and self.head_size % 2:
            fail(f"RoPE rotates pairs of dimensions, so the head size (head_dim, else n_embd/n_head) = {self.head_size} must be even")
        if self.rope_scaling is not None:
            self.check_rope_scaling()

    @property
    def head_size(self):
        """Each attention head's width: head_dim where set, else n_embd // n_head."""
        return self.head_dim or self.n_embd // self.n_head

    def check_rope_scaling(self):
        s = self.rope_scaling
        example = "{'rope_type': 'llama3', " + ", ".join(f"'{key}': ..." for key in LLAMA3_SCALING) + "}"
        if not isinstance(s, dict) or s.get("rope_type") != "llama3" or set(s) != {"rope_type", *LLAMA3_SCALING}:
            fail(f"rope_scaling={s!r} is not Llama 3's RoPE scaling, the only one the GPT has; write {example} or None")
        if any(isinstance(s[key], bool) or not isinstance(s[key], (int, float)) or s[key] <= 0 for key in LLAMA3_SCALING):
            fail(f"rope_scaling={s!r}: {', '.join(LLAMA3_SCALING)} must be positive numbers")
        if s["high_freq_factor"] <= s["low_freq_factor"]:
            fail(f"rope_scaling={s!r}: high_freq_factor must exceed low_freq_factor (the band they bound is blended between)")
        if self.position != "rope":
            fail("rope_scaling scales RoPE's frequencies, so it needs position='rope'")

    def model_args(self):
        """The model fields as a checkpoint records them: every GPT-2 field, the Llama family's where set."""
        return {f.name: getattr(self, f.name) for f in fields(GPTConfig)
                if f.name not in LLAMA_FIELDS or getattr(self, f.name) != f.default}

    @classmethod
    def from_dict(cls, args):
        """The config of a checkpoint's model_args. Without gelu_approximate (a checkpoint not written here) the GELU
        is the writer's: tanh where scale_attn_by_inverse_layer_idx is present, exact where it is absent."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known)
        if unknown:
            fail(f"model_args has unknown keys {unknown}; this checkpoint is not from a GPT of this project, "
                 "nanoGPT or the paper authors' fork")
        if "gelu_approximate" not in args:
            # the paper authors' nanoGPT fork uses GPT-2's tanh GELU and is the only writer that records
            # scale_attn_by_inverse_layer_idx (whatever its value); nanoGPT itself uses the exact GELU
            authors_fork = "scale_attn_by_inverse_layer_idx" in args
            args = {**args, "gelu_approximate": "tanh" if authors_fork else "none"}
        return cls(**args)


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's has no bias=False before 2.1)."""

    def __init__(self, ndim, bias, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """Llama's RMSNorm, x / rms(x) times a gain, in float32 whatever the activations' dtype (as Llama and Qwen2)."""

    def __init__(self, ndim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.eps = eps

    def forward(self, x):
        return self.weight * F.rms_norm(x.float(), self.weight.shape, eps=self.eps).to(x.dtype)


def norm(config):
    """A block's norms and ln_f: GPT-2's LayerNorm or Llama's RMSNorm."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, config.norm_eps)
    return LayerNorm(config.n_embd, config.bias, config.norm_eps)


def rotate(x, rope):
    """RoPE as Llama applies it to (B, heads, T, head_size) q or k: dimension j pairs with j + head_size/2. The rotation
    runs in float32 (rope's tables) and returns x's dtype."""
    cos, sin = rope
    x1, x2 = x.chunk(2, dim=-1)
    return (x * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)


def rope_frequencies(config, device):
    """RoPE's angular frequencies theta^(-2j/d) of the d/2 dimension pairs j, d the head size. Under Llama 3's scaling
    (transformers' _compute_llama3_parameters), with L the original context: wavelengths 2 pi / frequency shorter than
    L / high_freq_factor are kept, longer than L / low_freq_factor divided by factor, and those between blended,
    s * f + (1 - s) * f / factor with s = (L / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)."""
    d = config.head_size
    inv_freq = 1.0 / config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float, device=device) / d)
    scaling = config.rope_scaling
    if scaling is None:
        return inv_freq
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    wavelength = 2 * math.pi / inv_freq
    # s clamped to [0, 1] is the three bands at once: 1 keeps a frequency exactly, 0 divides it by factor exactly
    s = ((scaling["original_max_position_embeddings"] / wavelength - low) / (high - low)).clamp(0, 1)
    return (1 - s) * inv_freq / scaling["factor"] + s * inv_freq


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        assert config.head_dim is not None or config.n_embd % config.n_head == 0
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head or config.n_head
        self.head_dim = config.head_size
        # q, k and v stacked along the rows: (n_head + 2 * n_kv_head) * head_dim of them, 3 * n_embd without GQA
        qkv_bias = config.bias if config.qkv_bias is None else config.qkv_bias
        self.c_attn = nn.Linear(config.n_embd, (self.n_head + 2 * self.n_kv_head) * self.head_dim, bias=qkv_bias)
        self.c_proj = nn.Linear(self.n_head * self.head_dim, config.n_embd, bias=config.bias)
        # Qwen3's q_norm and k_norm: RMSNorm over each head's head_dim dimensions
        self.q_norm = RMSNorm(self.head_dim, config.norm_eps) if config.qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, config.norm_eps) if config.qk_norm else None
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout
        self.scale = 1.0 / math.sqrt(self.head_dim)
        if config.scale_attn_by_inverse_layer_idx:
            self.scale /= layer_idx + 1

    def attend(self, q, k, v):
        """Causal attention with torch's fused kernels (flash attention on CUDA)."""
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                              is_causal=True, scale=self.scale,
                                              **({'enable_gqa': True} if self.n_kv_head != self.n_head else {}))  # torch >= 2.5

    def forward(self, x, attention_hook=None, rope=None):
        """rope: the (cos, sin) tables of GPT.rope_tables with position='rope', else None."""
        B, T, _ = x.size()
        q_size, kv_size = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        q, k, v = self.c_attn(x).split([q_size, kv_size, kv_size], dim=2)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, n_kv_head, T, hs)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            # before the rotation, as Qwen3; back in v's dtype, which the float32 gains promote under autocast, as the
            # attention below picks its path by q's dtype
            q, k = self.q_norm(q).to(v.dtype), self.k_norm(k).to(v.dtype)
        if rope is not None:
            q, k = rotate(q, rope), rotate(k, rope)
        if attention_hook is None and x.device.type == "cpu" and q.dtype == torch.bfloat16 and T <= CPU_FP32_ATTENTION_T:
            # torch's CPU flash attention runs short sequences slower in bf16 than in float32 (docs/speed.md), so
            # there the attention itself runs in float32 (under autocast or in a model cast to bf16); c_proj gets
            # bf16 back, which a bf16 model's weights need and autocast would cast to anyway
            with torch.autocast("cpu", enabled=False):
                y = self.attend(q.float(), k.float(), v.float()).to(q.dtype)
        elif attention_hook is None:
            y = self.attend(q, k, v)
        else:
            # explicit path: the probe needs the post-softmax matrices themselves, one per query head
            k, v = (t.repeat_interleave(self.n_head // self.n_kv_head, dim=1) for t in (k, v))
            att = (q @ k.transpose(-2, -1)) * self.scale
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~causal, float("-inf"))
            att = F.softmax(att.float(), dim=-1)
            attention_hook(att)
            y = self.attn_dropout(att.to(v.dtype)) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, q_size)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        hidden = config.mlp_hidden or 4 * config.n_embd
        self.swiglu = config.mlp == "swiglu"
        # SwiGLU's gate and up projections stacked along the rows, as q, k and v are in c_attn
        self.c_fc = nn.Linear(config.n_embd, (2 if self.swiglu else 1) * hidden, bias=config.bias)
        self.gelu = nn.GELU(approximate=config.gelu_approximate)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.c_fc(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = self.gelu(h)
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = norm(config)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = norm(config)
        self.mlp = MLP(config)

    def forward(self, x, attention_hook=None, rope=None):
        x = x + self.attn(self.ln_1(x), attention_hook, rope)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    plain_logits = True  # logits are lm_head(final_hidden): the fused loss and a KD teacher's hidden states apply

    def __init__(self, config):
        super().__init__()
        assert config.vocab_size is not None and config.block_size is not None
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd) if config.position == "learned" else None,  # RoPE: none
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=norm(config),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.transformer.wte.weight = self.lm_head.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)
        # GPT-2 scales the residual projections by 1/sqrt(2 * n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def get_num_params(self, non_embedding=True):
        """Parameter count; by default only the weights that multiply: position embeddings and an untied token
        embedding are table lookups and left out (a tied one is lm_head's weight and counts)."""
        n_params = sum(p.numel() for p in self.parameters())
        if non_embedding and self.transformer.wpe is not None:
            n_params -= self.transformer.wpe.weight.numel()
        if non_embedding and not self.config.tie_embeddings:
            n_params -= self.transformer.wte.weight.numel()
        return n_params

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def embed(self, idx):
        t = idx.size(1)
        if t > self.config.block_size:
            fail(f"sequence of length {t} is longer than the model's block_size {self.config.block_size}")
        x = self.transformer.wte(idx)
        if self.transformer.wpe is not None:
            x = x + self.transformer.wpe(torch.arange(0, t, dtype=torch.long, device=idx.device))
        return self.transformer.drop(x)

    def rope_tables(self, t, device):
        """RoPE's (cos, sin), float32 (t, head_size) tables of positions 0..t-1 as Llama computes them (each frequency
        twice: for dimension j and j + head_size/2), or None with learned positions. Cheap enough to make per call."""
        if self.config.position != "rope":
            return None
        angles = torch.arange(t, dtype=torch.float, device=device)[:, None] * rope_frequencies(self.config, device)
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos(), angles.sin()

    def final_hidden(self, idx, attention_hook=None):
        """The (B, T, n_embd) hidden states after ln_f, i.e. the input of lm_head (a KD teacher hands these over)."""
        x, rope = self.embed(idx), self.rope_tables(idx.size(1), idx.device)
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if attention_hook is None else (lambda att, i=i: attention_hook(i, att)), rope)
        return self.transformer.ln_f(x)

    def forward(self, idx, targets=None, attention_hook=None, loss_spec=None):
        """nanoGPT's contract by default: (logits, loss), full logits and the cross-entropy with targets,
        last-position logits and None without. attention_hook(layer_index, att) switches to the explicit attention
        path and sees every layer's post-softmax attention, float32 (B, n_head, T, T).
        loss_spec, a losses.LossSpec (training, needs targets), returns (logits, loss, terms) instead: the loss of the
        spec's terms (CE, and KD with a teacher's final hidden states and lm_head weight in the spec) and the terms
        {name: value}, detached. loss_spec.fused computes lm_head and the loss chunk by chunk without the full
        logits (logits is None); else by autograd on the full logits. Training goes through forward so DDP and
        torch.compile see it all."""
        x = self.final_hidden(idx, attention_hook)
        if loss_spec is not None and loss_spec.fused:
            return None, *fused_loss(x, self.lm_head.weight, targets, loss_spec)
        if loss_spec is not None:
            logits = self.lm_head(x)
            return logits, *plain_loss(logits, targets, loss_spec)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        else:
            logits = self.lm_head(x[:, [-1], :])  # inference only needs the last position
            loss = None
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx):
        """Yield (layer_index, att) one layer at a time, att the float32 post-softmax (B, n_head, T, T) maps.
        Only one layer's maps are alive at once, so probing a 48-layer model stays within memory."""
        x, rope = self.embed(idx), self.rope_tables(idx.size(1), idx.device)
        for i, block in enumerate(self.transformer.h):
            maps = []
            x = block(x, maps.append, rope)
            yield i, maps[0]

    @torch.no_grad()
    def hidden_states(self, idx):
        """Yield the residual stream at every block boundary, (B, T, n_embd) each: x_0, the embeddings' output, then
        x_{i+1}, the stream after block i (before ln_f). One at a time, as attention_maps."""
        x, rope = self.embed(idx), self.rope_tables(idx.size(1), idx.device)
        yield x
        for block in self.transformer.h:
            x = block(x, rope=rope)
            yield x

    def crop_block_size(self, block_size):
        """Shrink the context window, e.g. to use GPT-2's 1024-token weights with a smaller block_size."""
        assert block_size <= self.config.block_size
        self.config.block_size = block_size
        if self.transformer.wpe is not None:  # RoPE has no table to crop
            self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size])

    @classmethod
    def from_pretrained(cls, name_or_path, override_args=None):
        """GPT-2 weights from the Hugging Face hub ('gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl') or from a
        local HF GPT-2 directory (config.json + safetensors or pytorch_model.bin, sharded or not). No transformers
        needed. Llama, Qwen2 and Qwen3 folders are hf_llama.py's (checkpoint.load_model reads every kind)."""
        model, weights = cls.pretrained_weights(name_or_path, override_args)
        state = model.state_dict()
        with torch.no_grad():
            for k, w in weights.items():
                state[k].copy_(w)
        return model

    @classmethod
    def pretrained_weights(cls, name_or_path, override_args=None, meta=False):
        """(from_pretrained's GPT, without its weights; its weights {name: a view of the memory-mapped HF tensor},
        checked against its shapes). meta: the GPT is built on the meta device (parallel.fill fills it)."""
        from hf_llama import WEIGHT_FILES, read_config, read_weights, require  # hf_llama imports this module
        hub_names = {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}
        if os.path.isdir(name_or_path):
            folder = name_or_path
            if not os.path.isfile(os.path.join(folder, "config.json")) or \
                    not any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHT_FILES):
                fail(f"{folder} is not a Hugging Face GPT-2 directory: it needs config.json and one of {', '.join(WEIGHT_FILES)}")
        elif name_or_path in hub_names:
            from huggingface_hub import hf_hub_download
            repo = f"openai-community/{name_or_path}"
            try:
                hf_hub_download(repo, "model.safetensors")
                folder = os.path.dirname(hf_hub_download(repo, "config.json"))  # the snapshot holding both
            except Exception as e:
                fail(f"could not download {repo} from the Hugging Face hub ({type(e).__name__}); check the network or pass a local HF directory")
        else:
            fail(f"{name_or_path!r} is neither a local HF GPT-2 directory nor one of {sorted(hub_names)}")

        config_path = os.path.join(folder, "config.json")
        hf = read_config(config_path)
        if hf.get("model_type", "gpt2") != "gpt2":
            fail(f"{config_path} describes a {hf.get('model_type')!r} model; GPT.from_pretrained reads only GPT-2 "
                 "folders: read it with checkpoint.load_model, which reads the Llama family's too")
        require(hf, ("vocab_size", "n_layer", "n_head", "n_embd"), config_path)
        activations = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}
        activation = hf.get("activation_function", "gelu_new")
        if activation not in activations:
            fail(f"{config_path} uses activation {activation!r}; this model implements the GELUs {sorted(activations)} only")
        # settings this implementation does not have would silently change the logits; refuse them
        unsupported = {"layer_norm_epsilon": 1e-5, "scale_attn_weights": True, "tie_word_embeddings": True, "n_inner": None}
        for key, expected in unsupported.items():
            if hf.get(key, expected) != expected and not (key == "n_inner" and hf[key] == 4 * hf["n_embd"]):
                fail(f"{config_path} sets {key}={hf[key]!r}; this GPT-2 implementation supports only {expected!r}")
        config_args = dict(block_size=hf.get("n_positions", 1024), vocab_size=hf["vocab_size"], n_layer=hf["n_layer"],
                           n_head=hf["n_head"], n_embd=hf["n_embd"], bias=True,
                           scale_attn_by_inverse_layer_idx=bool(hf.get("scale_attn_by_inverse_layer_idx", False)),
                           gelu_approximate=activations[activation])
        config_args.update(override_args or {})
        with torch.device("meta") if meta else nullcontext():
            model = cls(GPTConfig(**config_args))

        sd_hf = read_weights(folder)
        # GPT2Model checkpoints have no "transformer." prefix, GPT2LMHeadModel ones do; the causal-mask buffers
        # and the tied lm_head are not weights
        sd_hf = {k.removeprefix("transformer."): v for k, v in sd_hf.items()
                 if not k.endswith((".attn.bias", ".attn.masked_bias")) and k != "lm_head.weight"}
        sd = model.state_dict()
        sd_keys = [k for k in sd if k != "lm_head.weight"]
        missing = [k for k in sd_keys if k.removeprefix("transformer.") not in sd_hf]
        if missing:
            fail(f"{folder} lacks {len(missing)} GPT-2 weights (first: {missing[0]}); is it a GPT-2 checkpoint?")
        conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
        weights = {}
        for k in sd_keys:
            w = sd_hf[k.removeprefix("transformer.")]
            if k.endswith(conv1d):
                w = w.t()  # HF stores these as Conv1D (in, out); nn.Linear wants (out, in)
            if w.shape != sd[k].shape:
                fail(f"{folder}: {k} has shape {tuple(w.shape)}, config.json implies {tuple(sd[k].shape)}")
            weights[k] = w
        return model, weights

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type, fused=True, decay_embeddings=True):
        """AdamW with weight decay on matrices and embeddings only (>= 2-D), as today's nanoGPT.
        decay_embeddings=False decays the Linear weights only, as the paper authors' fork (older nanoGPT) did: no decay
        on wte and wpe, and where wte is lm_head's weight (tied), none on the output layer either.
        fused=True uses the fused kernel wherever the installed torch has one for device_type (CUDA, and CPU since
        torch 2.4: 5x faster than the per-tensor loop on the 124M model); fused=False is nanoGPT's choice off CUDA
        (the baseline of bench.py)."""
        embeddings = {id(table.weight) for table in (self.transformer.wte, self.transformer.wpe) if table is not None}
        return adamw(self.parameters(), embeddings, weight_decay, learning_rate, betas, device_type, fused, decay_embeddings)

    def flops_per_token(self, backward=True):
        """FLOPs per token of a training step (PaLM appendix B: 6N plus attention), or of the forward pass alone
        (a third of it: 2N plus attention's forward)."""
        cfg = self.config
        per_matmul_pass = 2 * self.get_num_params() + 4 * cfg.n_head * cfg.head_size * sum(self.keys_attended())
        return per_matmul_pass * (3 if backward else 1)

    def keys_attended(self):
        """Per layer, the keys each query's QK^T and AV count in flops_per_token: block_size in every layer (PaLM's
        count, causal masking not halved)."""
        return [self.config.block_size] * self.config.n_layer

    def estimate_mfu(self, fwdbwd_per_iter, dt, ptdtype=torch.bfloat16, teacher=None):
        """Model FLOPs utilisation against the detected GPU's dense peak; None when the peak is not known.
        A KD teacher's forward pass on the same tokens counts too."""
        peak = peak_flops(self.lm_head.weight.device, ptdtype)
        if peak is None or dt <= 0:
            return None
        flops = self.flops_per_token() + (teacher.flops_per_token(backward=False) if teacher is not None else 0)
        return flops * self.config.block_size * fwdbwd_per_iter / dt / peak

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Sample max_new_tokens tokens after the (B, T) prompt idx."""
        for _ in range(max_new_tokens):
            idx_cond = idx if idx.size(1) <= self.config.block_size else idx[:, -self.config.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            probs = F.softmax(logits, dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
        return idx


# dense peak FLOP/s (no sparsity) of known GPUs: bf16/fp16 and tf32
GPU_PEAK_FLOPS = {
    "A100": {"half": 312e12, "tf32": 156e12},
    "H100 PCIe": {"half": 756e12, "tf32": 378e12},
    "H100": {"half": 989e12, "tf32": 494e12},  # SXM
    "H200": {"half": 989e12, "tf32": 494e12},
}


def adamw(parameters, embeddings, weight_decay, learning_rate, betas, device_type, fused, decay_embeddings):
    """GPT.configure_optimizers' AdamW over parameters (each once), embeddings the ids of the lookup tables' weights."""
    params = [p for p in parameters if p.requires_grad]  # the tied wte/lm_head weight once
    decays = lambda p: p.dim() >= 2 and (decay_embeddings or id(p) not in embeddings)
    optim_groups = [
        {"params": [p for p in params if decays(p)], "weight_decay": weight_decay},
        {"params": [p for p in params if not decays(p)], "weight_decay": 0.0},
    ]
    use_fused = fused and "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type in fused_adamw_devices()
    return torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, **({"fused": True} if use_fused else {}))


def fused_adamw_devices():
    """Device types with a fused AdamW kernel in the installed torch (only 'cuda' where it cannot say)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        return _get_fused_kernels_supported_devices()
    except ImportError:
        return ["cuda"]


def peak_flops(device, ptdtype):
    """Peak FLOP/s of a CUDA device for this dtype, or None for CPUs and unknown GPUs."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in GPU_PEAK_FLOPS.items():  # "H100 PCIe" is listed before "H100" so it matches first
        if key in name:
            return peaks["half"] if ptdtype in (torch.bfloat16, torch.float16) else peaks["tf32"]
    return None
