"""Any Hugging Face decoder (AutoModelForCausalLM) behind the parts of model.py's GPT interface that the scripts use,
for the families model.py does not represent exactly (Falcon, OLMo, Gemma, Qwen3.5, ...).

HFModel wraps the transformers model, in float32 with eager attention (the only implementation that computes the
attention maps) and no KV cache, and finds its parts by structure, not by family: the decoder layers are the first
nn.ModuleList of the base model as long as config.num_hidden_layers, each layer's attention and MLP are its children
of the usual names (ATTENTION_NAMES, MLP_NAMES), the final norm the base model's child of a usual name. It offers what
attention_probe.py reads of a GPT: config (n_layer, n_head, n_embd, block_size, vocab_size), forward(idx, targets)
-> (logits, loss), attention_maps(idx), hidden_states(idx), and each layer's attention and MLP module (parts) for the
ablations; and what training will need (issue 28): the embeddings, lm_head, final_norm, the layers (blocks).

checkpoint.load_model picks this path for a Hugging Face source where model.py cannot represent the model
(model_path='auto'), or always (model_path='transformers').
"""
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import fail

# a decoder layer's child that mixes tokens (Qwen3.5's linear-attention layers: linear_attn, which has no maps) ...
ATTENTION_NAMES = ("self_attn", "self_attention", "attn", "attention", "linear_attn")
# ... and its feed-forward child
MLP_NAMES = ("mlp", "feed_forward", "ffn", "block_sparse_moe")
# the base model's norm after the last layer
FINAL_NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "norm_f")


@dataclass
class AdapterConfig:
    """The GPTConfig fields the scripts read of a transformers model."""
    n_layer: int
    n_head: int  # query heads: the attention maps have one per query head, under GQA and multi-query attention too
    n_embd: int
    block_size: int
    vocab_size: int
    architecture: str  # transformers' class, e.g. FalconForCausalLM

    def model_args(self):
        return asdict(self)


def child(module, names):
    """The first child of module named one of names, or None."""
    return next((getattr(module, name) for name in names if isinstance(getattr(module, name, None), nn.Module)), None)


def first_output(out):
    """A layer's or sublayer's output tensor: transformers' modules return a tensor or a tuple that starts with it."""
    return out[0] if isinstance(out, tuple) else out


class HFModel(nn.Module):
    def __init__(self, hf, where):
        super().__init__()
        self.hf = hf
        text = hf.config.get_text_config()
        name = type(hf).__name__
        n_layer = text.num_hidden_layers
        layers = next((m for m in hf.base_model.modules() if isinstance(m, nn.ModuleList) and len(m) == n_layer), None)
        if layers is None:
            fail(f"{where}: {name} has no list of num_hidden_layers={n_layer} decoder layers in its base model, so the "
                 f"probe cannot find its layers")
        # plain lists, not submodules: the layers stay registered once, under hf, whose state-dict names they keep
        self.blocks = list(layers)
        self.parts = {"attn": [child(b, ATTENTION_NAMES) for b in self.blocks],
                      "mlp": [child(b, MLP_NAMES) for b in self.blocks]}
        for part, names in (("attn", ATTENTION_NAMES), ("mlp", MLP_NAMES)):
            if None in self.parts[part]:
                fail(f"{where}: {name}'s decoder layer {type(self.blocks[0]).__name__} has no child named "
                     f"{' or '.join(names)}, so the probe cannot find its {part} sublayer")
        block_size = getattr(text, "max_position_embeddings", None)
        if block_size is None:
            fail(f"{where}: {name}'s config has no max_position_embeddings, the context the probe's windows must fit")
        self.config = AdapterConfig(n_layer=n_layer, n_head=text.num_attention_heads, n_embd=text.hidden_size,
                                    block_size=block_size, vocab_size=text.vocab_size, architecture=name)

    @property
    def wte(self):
        return self.hf.get_input_embeddings()

    @property
    def lm_head(self):
        return self.hf.get_output_embeddings()

    @property
    def final_norm(self):
        """The norm between the last layer and lm_head (None where the base model has none of FINAL_NORM_NAMES)."""
        return child(self.hf.base_model, FINAL_NORM_NAMES)

    def logits(self, idx):
        if idx.size(1) > self.config.block_size:
            fail(f"sequence of length {idx.size(1)} is longer than the model's block_size {self.config.block_size}")
        return self.hf(input_ids=idx, use_cache=False).logits

    def forward(self, idx, targets=None):
        """nanoGPT's contract: (logits, loss), full logits and the cross-entropy with targets (-1: ignored), the last
        position's logits and None without. The logits are the transformers model's own (softcapping included)."""
        logits = self.logits(idx)
        if targets is None:
            return logits[:, [-1], :], None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    def run_with_hooks(self, idx, hooks):
        """One forward pass with hooks [(module, fn, pre)] in place: fn(output) after module's forward, or
        fn(its hidden-states input) before it where pre."""
        handles = []
        try:
            for module, fn, pre in hooks:
                if pre:  # the hidden states come positionally or as a keyword, depending on the family
                    hook = lambda m, args, kwargs, fn=fn: fn(args[0] if args else kwargs["hidden_states"])
                    handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
                else:
                    handles.append(module.register_forward_hook(lambda m, args, out, fn=fn: fn(out)))
            self.logits(idx)
        finally:
            for handle in handles:
                handle.remove()

    @torch.no_grad()
    def attention_maps(self, idx):
        """Yield (layer_index, att) for every layer whose attention hands out its maps, att the float32 post-softmax
        (B, n_head, T, T), in layer order. One forward pass records every layer's maps of the batch (transformers has
        no way to stop between layers), so memory holds all of them: lower batch_size for a deep model. Layers
        without maps (linear attention) are not yielded; the probe reports them."""
        maps = {}

        def record(layer, out):
            if isinstance(out, tuple) and len(out) > 1 and torch.is_tensor(out[1]) and out[1].dim() == 4:
                maps[layer] = out[1].float()

        self.run_with_hooks(idx, [(m, lambda out, i=i: record(i, out), False) for i, m in enumerate(self.parts["attn"])])
        yield from sorted(maps.items())

    @torch.no_grad()
    def hidden_states(self, idx):
        """Yield the residual stream at every layer boundary, (B, T, n_embd) each: x_0, what enters the first layer
        (the embeddings' output, scaled or not as the family does), then x_{i+1}, layer i's output (before the final
        norm), as GPT.hidden_states."""
        states = []
        hooks = [(self.blocks[0], states.append, True)]
        hooks += [(block, lambda out: states.append(first_output(out)), False) for block in self.blocks]
        self.run_with_hooks(idx, hooks)
        yield from states


def from_pretrained(name_or_folder, where=None):
    """The HFModel of a local Hugging Face folder or hub name, in float32 with eager attention."""
    from transformers import AutoModelForCausalLM
    where = where or name_or_folder
    try:
        hf = AutoModelForCausalLM.from_pretrained(name_or_folder, attn_implementation="eager", dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        fail(f"transformers could not load {where} as a causal LM ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})")
    hf.config.use_cache = False
    return HFModel(hf.eval(), where)
