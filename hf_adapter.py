"""Any Hugging Face decoder (AutoModelForCausalLM) behind the parts of model.py's GPT interface that the scripts use,
for the families model.py does not represent exactly (Falcon, OLMo, Gemma, Qwen3.5, SmolLM3, ...).

HFModel wraps the transformers model, in float32 with eager attention (the only implementation that computes the
attention maps) and no KV cache, and finds its parts by structure, not by family: the decoder layers are the first
nn.ModuleList of the base model as long as config.num_hidden_layers, each layer's attention and MLP are its children
of the usual names (ATTENTION_NAMES, MLP_NAMES), the final norm the base model's child of a usual name. It offers what
attention_probe.py reads of a GPT: config (n_layer, n_head, n_embd, block_size, vocab_size), forward(idx, targets)
-> (logits, loss), attention_maps(idx), hidden_states(idx), and each layer's attention and MLP module (parts) for the
ablations; and what train.py, inherit.py and grow.py use: forward(idx, targets, loss_spec) with the fused loss on the
final hidden states and lm_head's weight, final_hidden (a KD teacher's), parameter and FLOP counts, the optimizer's
groups, generate, crop_block_size, and checkpoints in transformers' own state-dict names with the HF config in
model_args (config.model_args(); from_args builds the model back).

The fused loss computes lm_head(final hidden state): where a family's logits are something else (Gemma 2's
final_logit_softcapping, Granite's logits_scaling, Cohere's logit_scale, a bias on lm_head) training takes the plain
loss on the model's own logits instead, with a note (as a KD teacher it hands over those logits). Which is which is found, not listed: at load the model's logits
of a probe input are compared with final_hidden @ lm_head.weight (plain_logits).

checkpoint.load_model picks this path for a Hugging Face source where model.py cannot represent the model
(model_path='auto'), or always (model_path='transformers').
"""
import copy
import os
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

import hf_llama
from common import fail
from losses import fused_loss, plain_loss
from model import GPT, adamw

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
    hf_config: dict = field(default_factory=dict)  # transformers' config as a dict: what from_args builds the model from

    def model_args(self):
        return asdict(self)

    @property
    def head_size(self):
        """Each query head's size, as GPTConfig.head_size (flops_per_token reads it): the config's head_dim, else
        n_embd / n_head."""
        text = self.hf_config.get("text_config") or self.hf_config
        return text.get("head_dim") or self.n_embd // self.n_head


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
        self.layer_prefix = next(n for n, m in hf.named_modules() if m is layers) + "."  # e.g. 'model.layers.'
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
                                    block_size=block_size, vocab_size=text.vocab_size, architecture=name,
                                    hf_config=hf.config.to_dict())
        self.where, self.plain_logits = where, True
        # a model on the meta device (results.py's shapes, train_memory.py's counts, an FSDP start) has no logits to
        # compare until it is filled (parallel.parallelize checks them then)
        if self.lm_head.weight.device.type != "meta":
            self.check_logits()

    def check_logits(self):
        """Set plain_logits (logits_are_plain), with a note where they are not."""
        self.plain_logits = self.logits_are_plain()
        if not self.plain_logits and int(os.environ.get("RANK", 0)) == 0:
            print(f"note: {self.where}: {self.config.architecture}'s logits are not lm_head(final hidden state) (a "
                  "softcap, a logit scale or an lm_head bias), so it trains with the plain loss on its own logits, not the fused loss")

    def reset_buffers(self):
        """Compute again the buffers no checkpoint holds (RoPE's inv_freq), as transformers does after building a
        model on the meta device: to_empty() leaves them uninitialised."""
        for module in self.hf.modules():
            if module._non_persistent_buffers_set:
                self.hf._init_weights(module)

    @property
    def wte(self):
        return self.hf.get_input_embeddings()

    @property
    def lm_head(self):
        return self.hf.get_output_embeddings()

    @property
    def tied(self):
        """Whether lm_head's weight is the token embedding's."""
        return self.wte.weight is self.lm_head.weight

    @property
    def final_norm(self):
        """The norm between the last layer and lm_head (None where the base model has none of FINAL_NORM_NAMES)."""
        return child(self.hf.base_model, FINAL_NORM_NAMES)

    def check_length(self, idx):
        if idx.size(1) > self.config.block_size:
            fail(f"sequence of length {idx.size(1)} is longer than the model's block_size {self.config.block_size}")

    def logits(self, idx):
        """The transformers model's own logits (softcapping, scaling, lm_head bias included)."""
        self.check_length(idx)
        return self.hf(input_ids=idx, use_cache=False).logits

    def final_hidden(self, idx):
        """The (B, T, n_embd) hidden states after the final norm: the base model's output, lm_head's input."""
        self.check_length(idx)
        return self.hf.base_model(input_ids=idx, use_cache=False)[0]

    @torch.no_grad()
    def logits_are_plain(self):
        """Whether the model's logits are final_hidden @ lm_head.weight.T (what the fused loss and KD compute): no
        bias on lm_head, and equal logits on a probe input of 8 tokens."""
        if getattr(self.lm_head, "bias", None) is not None:
            return False
        was_training = self.hf.training
        self.hf.eval()  # no dropout in the comparison
        idx = (torch.arange(min(8, self.config.block_size)) * 7919 % self.config.vocab_size)[None].to(self.lm_head.weight.device)
        own, product = self.logits(idx), self.final_hidden(idx) @ self.lm_head.weight.t()
        self.hf.train(was_training)
        return torch.allclose(own, product, rtol=1e-4, atol=1e-5 * own.abs().max().item())

    def forward(self, idx, targets=None, loss_spec=None):
        """GPT.forward's contract: (logits, loss), full logits and the cross-entropy with targets (-1: ignored), the
        last position's logits and None without; with loss_spec (training) (logits, loss, terms), the fused loss on
        final_hidden and lm_head's weight where the logits are plain (logits None), else plain_loss on the model's own
        logits."""
        if loss_spec is not None and loss_spec.fused and self.plain_logits:
            return None, *fused_loss(self.final_hidden(idx), self.lm_head.weight, targets, loss_spec)
        logits = self.logits(idx)
        if loss_spec is not None:
            return logits, *plain_loss(logits, targets, loss_spec)
        if targets is None:
            return logits[:, [-1], :], None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    # checkpoints hold transformers' own names (model.layers.0.self_attn.q_proj.weight), not this wrapper's hf.*
    def state_dict(self, *args, **kwargs):
        return self.hf.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        return self.hf.load_state_dict(state_dict, strict=strict, assign=assign)

    def lookup_tables(self):
        """The weights of every nn.Embedding: table lookups, not multiplications (unless one is lm_head's, tied)."""
        return [m.weight for m in self.hf.modules() if isinstance(m, nn.Embedding)]

    def get_num_params(self, non_embedding=True):
        """As GPT.get_num_params: every parameter, less the lookup tables that are not lm_head's weight."""
        n_params = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n_params -= sum(w.numel() for w in self.lookup_tables() if w is not self.lm_head.weight)
        return n_params

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type, fused=True, decay_embeddings=True):
        """GPT.configure_optimizers' rules: matrices decay, norms and biases not; decay_embeddings=False spares the
        lookup tables (and lm_head where tied to one)."""
        return adamw(self.parameters(), {id(w) for w in self.lookup_tables()}, weight_decay, learning_rate, betas,
                     device_type, fused, decay_embeddings)

    def keys_attended(self):
        """Per layer, the keys each query's QK^T and AV count in flops_per_token: block_size under full attention, the
        window under sliding-window attention (config.layer_types, else sliding_window on every layer unless
        use_sliding_window is off), none under linear attention (its per-token state update, ~head size^2 per head,
        is left out)."""
        text = self.config.hf_config.get("text_config") or self.config.hf_config
        T, window = self.config.block_size, text.get("sliding_window")
        types = text.get("layer_types") or (["sliding_attention" if window and text.get("use_sliding_window", True)
                                              else "full_attention"] * self.config.n_layer)
        keys = {"sliding_attention": min(window or T, T), "linear_attention": 0}
        return [keys.get(kind, T) for kind in types]

    # GPT's own: they read config (n_layer, n_head, n_embd, block_size), keys_attended, lm_head and forward only
    flops_per_token = GPT.flops_per_token
    estimate_mfu = GPT.estimate_mfu
    generate = GPT.generate

    def crop_block_size(self, block_size):
        """Train and sample on shorter windows; transformers computes positions (RoPE) per call, so nothing is cut."""
        assert block_size <= self.config.block_size
        self.config.block_size = block_size

    def tensor_group(self, name):
        """What a state-dict name belongs to, in inherit.py's groups: 'blocks.attn', 'blocks.mlp' or 'blocks.ln' in a
        decoder layer (by the child's name), else 'lm_head' or 'ln_f', and everything else outside the layers 'wte'
        (the token embedding and whatever else feeds the layers; 'wte/lm_head' where tied)."""
        if name.startswith(self.layer_prefix):
            child_name = name[len(self.layer_prefix):].split(".")[1]
            if child_name in ATTENTION_NAMES:
                return "blocks.attn"
            if child_name in MLP_NAMES:
                return "blocks.mlp"
            if "norm" in child_name or child_name.startswith("ln"):
                return "blocks.ln"
            fail(f"{self.config.architecture}'s decoder layer has a part {child_name!r} that is neither attention, MLP nor a norm, "
                 "so inherit_block_parts cannot say whether to keep it; use inherit_block_parts=all")
        names = {id(m): n for n, m in self.hf.named_modules(remove_duplicate=False)}
        for group, module in (("lm_head", self.lm_head), ("ln_f", self.final_norm)):
            if module is not None and name.startswith(names[id(module)] + "."):
                return "wte/lm_head" if self.tied and group != "ln_f" else group
        # the rest feeds the layers from outside (Gemma 4's per-layer embeddings, their projection and its norm):
        # input embeddings, kept as the token embedding is
        return "wte/lm_head" if self.tied else "wte"

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


def cut_layers(hf_config, layers):
    """transformers' config (a dict) of a model whose layer i is layer layers[i] of hf_config's: num_hidden_layers
    set, every per-layer list (a list as long as num_hidden_layers: layer_types, no_rope_layers, ...) cut or repeated
    alike, and so the per-layer overrides keyed by layer index (per_layer_config: Gemma 4's head sizes of its
    full-attention layers) and num_kv_shared_layers (kv_shared_layers); a multimodal config's text_config likewise."""
    n = hf_config.get("num_hidden_layers")
    cut = {}
    for key, value in hf_config.items():
        if key == "text_config" and isinstance(value, dict):
            value = cut_layers(value, layers)
        elif isinstance(value, list) and len(value) == n and key != "architectures":
            value = [value[i] for i in layers]
        elif key == "per_layer_config" and isinstance(value, dict):  # JSON makes its keys strings
            by_layer = {int(i): overrides for i, overrides in value.items()}
            value = {str(i): by_layer[s] for i, s in enumerate(layers) if s in by_layer}
        elif key == "num_kv_shared_layers" and value:
            value = kv_shared_layers(hf_config, layers)
        cut[key] = value
    if n is not None:
        cut["num_hidden_layers"] = len(layers)
    return cut


def kv_shared_layers(hf_config, layers):
    """num_kv_shared_layers of the cut model. In transformers (Gemma 4, Gemma 3n) the last N layers compute no keys
    and values (they have no k/v weights) but reuse those of the last earlier layer of their layer type. The cut is
    that model only where every kept layer keeps its role: the kept sharing layers come last, and each one's type
    has, as its last layer before them, the layer it reused in the source. Otherwise a one-line error."""
    L, N = hf_config["num_hidden_layers"], hf_config["num_kv_shared_layers"]
    types = hf_config.get("layer_types") or ["attention"] * L
    first = L - N  # the first sharing layer of the source
    n = sum(s >= first for s in layers)
    owners, sharing = layers[:len(layers) - n], layers[len(layers) - n:]
    for s in sharing:
        if s < first:
            fail(f"num_kv_shared_layers={N}: source layers >= {first} reuse earlier layers' keys and values, so they "
                 f"must come last in the inherited layers, after every other one (got {layers})")
        source = max((i for i in range(first) if types[i] == types[s]), default=None)
        kept = [i for i in owners if types[i] == types[s]]
        if source is None or not kept or kept[-1] != source:
            fail(f"num_kv_shared_layers={N}: source layer {s} reuses the keys and values of layer {source} "
                 f"({types[s]}), so inheriting it needs layer {source} as the last {types[s]} layer before it "
                 f"(got {layers}); keep it there, or keep only layers below {first}")
    return n


def cut_weights(model, tensors, hf_config, layers):
    """The weights of the model cut to `layers` (hf_config: cut_layers' config of it), from tensors: the source's
    state dict with layer layers[i]'s weights renamed layer i's. Weights outside the decoder layers whose shape
    depends on the depth (Gemma 4's per-layer embeddings embed_tokens_per_layer [vocab, L * d] and their
    projection per_layer_model_projection [L * d, hidden]) pack one chunk per layer, layer-major, along one
    dimension: the cut gathers the chunks of `layers` (any order, repeats too). They are found by shape, not by
    name: a meta-device model one layer deeper has one chunk more. Then every weight must have the shape of the cut
    model's (built on the meta device); one that has not (a config entry that depends on the layers and is not cut
    with them) is a one-line error naming it."""
    arch, L = model.config.architecture, model.config.n_layer
    deeper = hf_from_config(cut_layers(model.config.hf_config, [0, *range(L)]), arch, "meta").state_dict()
    cut, cut_shapes = dict(tensors), {name: tuple(w.shape) for name, w in tensors.items()}
    for name, w in tensors.items():
        if name.startswith(model.layer_prefix) or deeper[name].shape == w.shape:
            continue
        grown = [d for d in range(w.dim()) if deeper[name].shape[d] != w.shape[d]]
        if len(grown) != 1 or deeper[name].shape[grown[0]] * L != w.shape[grown[0]] * (L + 1):
            fail(f"{arch}'s weight {name} changes shape with the depth ({tuple(w.shape)} at {L} layers, "
                 f"{tuple(deeper[name].shape)} at {L + 1}) but not by one chunk per layer, so inheriting cannot cut it")
        dim, chunk = grown[0], w.shape[grown[0]] // L
        # made when read (common.tensor_of): a memory-mapped source stays unread until then
        cut[name] = partial(lambda w, dim, chunk: torch.cat([w.narrow(dim, s * chunk, chunk) for s in layers], dim), w, dim, chunk)
        cut_shapes[name] = tuple(len(layers) * chunk if d == dim else n for d, n in enumerate(w.shape))
    check_config_kept(hf_config, arch)
    shapes = {name: tuple(t.shape) for name, t in hf_from_config(hf_config, arch, "meta").state_dict().items()}
    for name in sorted(shapes.keys() | cut.keys()):
        if shapes.get(name) != cut_shapes.get(name):
            fail(f"{arch} cut to layers {layers}: its weight {name} is {shapes.get(name, 'absent')} in the cut model "
                 f"but {cut_shapes.get(name, 'absent')} in the source, so a config entry that "
                 "depends on the layers is not cut with them; inheriting cannot cut this model")
    return cut


def check_config_kept(hf_config, arch):
    """transformers takes the cut config as asked: a family may rewrite a per-layer list (Gemma 4 makes its last
    layer full attention), which would change what the kept layers compute; a one-line error naming the entry."""
    from transformers import AutoConfig
    built = AutoConfig.for_model(**copy.deepcopy(hf_config)).get_text_config().to_dict()  # it edits lists in place
    asked = hf_config.get("text_config") or hf_config
    for key, value in asked.items():
        if (isinstance(value, list) and len(value) == asked["num_hidden_layers"] and key != "architectures"
                and built.get(key) != value):
            fail(f"{arch} rewrites {key} of the inherited layers from {value} to {built.get(key)}, so they would not "
                 f"compute what they did in the source; choose layers whose {key} it accepts")


def hf_from_config(hf_config, where, device=None):
    """transformers' model of a config dict, float32, eager attention, fresh init (on device, e.g. 'meta', where given)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    try:
        config = AutoConfig.for_model(**hf_config)
        with torch.device(device) if device else nullcontext():  # None: the caller's default device
            hf = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    except Exception as e:  # transformers' config validation raises its own classes too
        fail(f"{where}: transformers cannot build a causal LM of its config ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})")
    hf.config.use_cache = False
    return hf


def from_args(args, where, device=None):
    """The HFModel of a checkpoint's model_args (config.model_args()): transformers' model built from the hf_config,
    fresh init (none on the meta device), cut to the block_size trained at."""
    if args.get("dropout"):
        fail(f"{where}: dropout={args['dropout']} is a setting of model.py's GPT; a transformers model has its config's own")
    model = HFModel(hf_from_config(args["hf_config"], where, device), where)
    if model.config.architecture != args["architecture"]:
        fail(f"{where}: model_args say {args['architecture']} but its hf_config builds {model.config.architecture}")
    if args["block_size"] < model.config.block_size:
        model.crop_block_size(args["block_size"])
    return model


def training_bytes(hf_config):
    """Bytes per GPU that training a model of the config dict holds before activations, as train.py trains (float32
    weights under autocast, float32 gradients, AdamW's two float32 moments; DDP keeps all of them on every GPU),
    counted on a model built on the meta device: {'params', 'weights', 'grads', 'adamw', 'total'}."""
    n = sum(p.numel() for p in hf_from_config(hf_config, "training_bytes", "meta").parameters())
    sizes = {"params": n, "weights": 4 * n, "grads": 4 * n, "adamw": 8 * n}
    return {**sizes, "total": sizes["weights"] + sizes["grads"] + sizes["adamw"]}


def from_folder_on_meta(folder, where):
    """(the HFModel of a local folder on the meta device, its weights memory-mapped: {transformers' name: tensor}) for
    parallel.fill, or None where the folder's weights are not named and shaped as the model's state dict (a family
    whose names transformers converts on load: from_pretrained reads it whole)."""
    from transformers import AutoConfig
    try:
        config = AutoConfig.from_pretrained(folder).to_dict()
    except Exception:  # from_pretrained says what is wrong, in one line
        return None
    model = HFModel(hf_from_config(config, where, "meta"), where)
    stored, state = hf_llama.read_weights(folder), model.state_dict(keep_vars=True)
    weights = {}
    for name, tensor in state.items():
        # a tied lm_head is stored once, as the embedding
        twin = next((other for other, t in state.items() if t is tensor and other in stored), name)
        if twin not in stored or stored[twin].shape != tensor.shape:
            return None
        weights[name] = stored[twin]
    return model, weights


def from_pretrained(name_or_folder, where=None, quiet=False):
    """The HFModel of a local Hugging Face folder or hub name, in float32 with eager attention. quiet: without
    transformers' progress bars and load report (a second try after model.py's refusal, whose error is the one shown)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging
    where = where or name_or_folder
    verbosity = hf_logging.get_verbosity()
    if quiet:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        hf, loading = AutoModelForCausalLM.from_pretrained(name_or_folder, attn_implementation="eager", dtype=torch.float32,
                                                           output_loading_info=True)
    except Exception as e:  # OSError, ValueError, KeyError, safetensors' errors, ...: what the folder lacks, in one line
        fail(f"transformers could not load {where} as a causal LM ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})")
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    # transformers initializes a missing weight at random with a warning; here it is a one-line error, as on model.py's path
    absent = sorted(loading["missing_keys"]) + sorted(str(k) for k in loading["mismatched_keys"])
    if absent:
        fail(f"{where} lacks {len(absent)} weight(s) its config announces, or holds them in another shape (first: {absent[0]})")
    hf.config.use_cache = False
    return HFModel(hf.eval(), where)
