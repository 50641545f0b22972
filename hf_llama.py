"""Hugging Face Llama, Qwen2 and Qwen3 folders (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM: config.json +
weights) as GPTs of model.py, whose Llama settings (norm, position, mlp, n_kv_head, head_dim, qk_norm, rope_scaling,
...) compute the same function. No transformers needed.

checkpoint.load_model reads such folders (and hub snapshots of them); export_hf.py writes them back with hf_layout.
A config.json setting the GPT does not have (RoPE scaling other than Llama 3's, sliding-window attention, another
activation, ...) is a one-line error naming it: the import is exactly the HF model or nothing. read_config and
read_weights read any HF folder (GPT-2's too): safetensors or pytorch_model.bin, whole or sharded, and a folder cut
short is a one-line error.
"""
import json
import os
import zipfile
from contextlib import nullcontext
from functools import partial

import torch

from common import fail, tensor_of
from model import GPT, LLAMA3_SCALING, GPTConfig

MODEL_TYPES = ("llama", "qwen2", "qwen3")
# config.json entries without which the model's shape or function is unknown
REQUIRED_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "max_position_embeddings", "rms_norm_eps")
# config.json entries that shape the weights
SHAPING_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim")
# the weight files of a HF folder in the order they are looked for: an index json lists the shards of its kind
WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin")


def read_config(path):
    """config.json as a dict, or a one-line error."""
    try:
        with open(path) as f:
            hf = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"could not read {path} ({type(e).__name__}); a Hugging Face folder needs a JSON config.json")
    if not isinstance(hf, dict):
        fail(f"{path} is no JSON object; a Hugging Face folder's config.json maps names to settings")
    return hf


def require(hf, keys, where):
    """One-line error for the first of keys that config.json (the dict hf, read from where) lacks."""
    missing = [key for key in keys if key not in hf]
    if missing:
        fail(f"{where} lacks {missing[0]!r}, which a {hf.get('model_type', 'gpt2')} config.json sets; the folder is "
             "incomplete or not a model of that type: fetch its config.json again")


def rope_settings(hf, where):
    """(rope_theta, rope_scaling) of a config.json. transformers 4 writes rope_theta and rope_scaling, transformers 5
    rope_parameters with rope_theta inside; where both are there, transformers 5 reads rope_scaling, as 4 does. Plain
    RoPE or Llama 3's scaling (rope_scaling None or its dict); any other type is a one-line error."""
    key = "rope_scaling" if hf.get("rope_scaling") else "rope_parameters"
    rope = dict(hf.get(key) or {})
    theta = rope.pop("rope_theta", None) or hf.get("rope_theta", 10000.0)
    rope_type = rope.pop("rope_type", rope.pop("type", "default"))
    if rope_type == "llama3":  # as transformers: the original context defaults to the model's
        rope.setdefault("original_max_position_embeddings", hf["max_position_embeddings"])
    expected = {"default": set(), "llama3": set(LLAMA3_SCALING)}
    if set(rope) != expected.get(rope_type):
        fail(f"{where} sets {key}={json.dumps(hf[key])}: rope_type {rope_type!r} with {sorted(rope) or 'no settings'}; "
             f"the GPT computes rope_type 'default' (no settings) and 'llama3' ({', '.join(LLAMA3_SCALING)}) only")
    return float(theta), ({"rope_type": rope_type, **rope} if rope else None)


def gpt_config(hf, where):
    """The GPTConfig arguments of a Llama, Qwen2 or Qwen3 config.json (the dict hf, read from where)."""
    require(hf, REQUIRED_KEYS, where)
    model_type = hf.get("model_type")
    heads, width = hf["num_attention_heads"], hf["hidden_size"]
    if hf.get("hidden_act", "silu") != "silu":
        fail(f"{where} sets hidden_act={hf['hidden_act']!r}; the GPT's SwiGLU uses silu only")
    kv_heads = hf.get("num_key_value_heads") or heads
    if kv_heads < 1 or heads % kv_heads:
        fail(f"{where} sets num_key_value_heads={kv_heads}, which does not divide num_attention_heads={heads}")
    head_dim = hf.get("head_dim")
    if not head_dim and width % heads:
        fail(f"{where} sets no head_dim and hidden_size={width} is not a multiple of num_attention_heads={heads}")
    if head_dim and head_dim * heads == width:  # the GPT's head_dim is set only where it is not n_embd / n_head (Qwen3)
        head_dim = None
    rope_theta, rope_scaling = rope_settings(hf, where)
    if model_type in ("qwen2", "qwen3"):
        if hf.get("use_sliding_window"):
            fail(f"{where} sets use_sliding_window=true; the GPT attends to the whole context, without a sliding window")
        if any(t != "full_attention" for t in hf.get("layer_types") or []):
            fail(f"{where} has layer_types other than full_attention; the GPT attends to the whole context in every layer")
    if model_type == "qwen2":
        bias, qkv_bias = False, True  # Qwen2: biases in q, k and v, none elsewhere
    else:  # Llama and Qwen3: attention_bias in q, k, v and o; mlp_bias (Llama's alone) in the MLP
        attention_bias, mlp_bias = hf.get("attention_bias", False), hf.get("mlp_bias", False)
        if attention_bias != mlp_bias:
            fail(f"{where} sets attention_bias={attention_bias} and mlp_bias={mlp_bias}; the GPT has biases in all "
                 "Linears or in none (or in q, k and v alone, as Qwen2)")
        bias, qkv_bias = attention_bias, None
    return dict(block_size=hf["max_position_embeddings"], vocab_size=hf["vocab_size"], n_layer=hf["num_hidden_layers"],
                n_head=heads, n_embd=width, bias=bias, norm="rmsnorm", norm_eps=hf["rms_norm_eps"], position="rope",
                rope_theta=rope_theta, mlp="swiglu", mlp_hidden=hf["intermediate_size"], n_kv_head=kv_heads,
                tie_embeddings=hf.get("tie_word_embeddings", False), qkv_bias=qkv_bias, head_dim=head_dim,
                qk_norm=model_type == "qwen3", rope_scaling=rope_scaling)


# HF's modules inside model.layers.<i>. that make each GPT module inside transformer.h.<i>., in the order the GPT
# stacks them along its rows
BLOCK_LAYOUT = {
    "ln_1": ["input_layernorm"],
    "attn.c_attn": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    "attn.c_proj": ["self_attn.o_proj"],
    "attn.q_norm": ["self_attn.q_norm"],  # Qwen3
    "attn.k_norm": ["self_attn.k_norm"],
    "ln_2": ["post_attention_layernorm"],
    "mlp.c_fc": ["mlp.gate_proj", "mlp.up_proj"],
    "mlp.c_proj": ["mlp.down_proj"],
}
OUTER_LAYOUT = {"transformer.wte.weight": "model.embed_tokens.weight", "transformer.ln_f.weight": "model.norm.weight",
                "lm_head.weight": "lm_head.weight"}


def hf_layout(model):
    """[(GPT tensor name, [(HF tensor name, rows)])] for every weight of a Llama-family GPT: the HF tensors it is made
    of, in the order they stack along its rows (rows None: the one HF tensor is all of it). A tied lm_head is wte."""
    c = model.config
    hidden = c.mlp_hidden or 4 * c.n_embd
    kv_rows = (c.n_kv_head or c.n_head) * c.head_size
    rows = {"self_attn.q_proj": c.n_head * c.head_size, "self_attn.k_proj": kv_rows, "self_attn.v_proj": kv_rows,
            "mlp.gate_proj": hidden, "mlp.up_proj": hidden}
    layout = []
    for name in model.state_dict():
        if name == "lm_head.weight" and c.tie_embeddings:
            continue
        if name in OUTER_LAYOUT:
            layout.append((name, [(OUTER_LAYOUT[name], None)]))
            continue
        _, _, i, rest = name.split(".", 3)  # transformer.h.<i>.<module>.<weight or bias>
        module, kind = rest.rsplit(".", 1)
        layout.append((name, [(f"model.layers.{i}.{m}.{kind}", rows.get(m)) for m in BLOCK_LAYOUT[module]]))
    return layout


# safetensors' dtype names of the tensors a model folder holds
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                      "BOOL": torch.bool}


def map_safetensors(path):
    """The tensors of a safetensors file as views of the memory-mapped file: a tensor's pages are read when touched
    (slicing one reads only the slice), and they count as the page cache's, not as this process's memory."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n)) if 8 + n <= size else None
    if not isinstance(header, dict):
        raise ValueError("the header is cut short or no JSON object")
    storage = torch.UntypedStorage.from_file(path, shared=False, nbytes=size)
    weights = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = (8 + n + offset for offset in entry["data_offsets"])
        if end > size:
            raise ValueError(f"{name} ends at byte {end} of a {size}-byte file")
        weights[name] = torch.tensor([], dtype=SAFETENSORS_DTYPES[entry["dtype"]]).set_(storage[start:end], 0, entry["shape"])
    return weights


def read_weight_file(path):
    """The tensors of one safetensors or torch file, memory-mapped (but a torch file of the format before torch 1.6,
    read whole); a file cut short is a one-line error."""
    try:
        if path.endswith(".safetensors"):
            return map_safetensors(path)
        weights = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:  # safetensors' and torch's errors on a cut or foreign file: one line, then stop
        fail(f"could not read {path} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); the file is incomplete or "
             "not a weights file: fetch it again")
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        fail(f"{path} holds no state dict of tensors; a HF folder's pytorch_model.bin maps weight names to tensors")
    return weights


def read_weights(folder):
    """Every tensor of a HF folder: the first of WEIGHT_FILES it has, an index json's shards all together."""
    name = next((name for name in WEIGHT_FILES if os.path.isfile(os.path.join(folder, name))), None)
    if name is None:
        fail(f"{folder} has none of {', '.join(WEIGHT_FILES)}; a Hugging Face folder needs its weights")
    files = [name]
    if name.endswith(".index.json"):
        index = read_config(os.path.join(folder, name))
        if not isinstance(index.get("weight_map"), dict):
            fail(f"{os.path.join(folder, name)} has no weight_map of tensor names to shard files; fetch it again")
        files = sorted(set(index["weight_map"].values()))
        absent = [file for file in files if not os.path.isfile(os.path.join(folder, file))]
        if absent:
            fail(f"{os.path.join(folder, name)} names the shard {absent[0]}, which {folder} lacks ({len(absent)} of "
                 f"{len(files)} shards missing); fetch the folder's weights again")
    weights = {}
    for file in files:
        weights.update(read_weight_file(os.path.join(folder, file)))
    return weights


def folder_weights(folder, hf, model):
    """The weights of the GPT `model` in a Llama, Qwen2 or Qwen3 folder whose config.json is hf, checked against the
    model's shapes without reading them: {GPT name: the memory-mapped HF tensor, or a function that concatenates the
    HF tensors the GPT stacks (q, k, v; gate, up) when it is called}."""
    weights = read_weights(folder)
    shapes = {name: tensor.shape for name, tensor in model.state_dict().items()}
    out, used = {}, set()
    for name, parts in hf_layout(model):
        missing = [hf_name for hf_name, _ in parts if hf_name not in weights]
        if missing:
            fail(f"{folder} lacks the weight {missing[0]}; is it a {hf['model_type']} *ForCausalLM checkpoint?")
        tensors = [weights[hf_name] for hf_name, _ in parts]
        shape = (sum(t.shape[0] for t in tensors), *tensors[0].shape[1:]) if tensors[0].dim() else tensors[0].shape
        if shape != shapes[name] or any(t.shape[1:] != tensors[0].shape[1:] for t in tensors):
            fail(f"{folder}: {' + '.join(n for n, _ in parts)} has shape {tuple(shape)}, config.json implies "
                 f"{tuple(shapes[name])} (by its {', '.join(SHAPING_KEYS)}); the weights are not this config's")
        out[name] = tensors[0] if len(tensors) == 1 else partial(torch.cat, tensors)
        used.update(hf_name for hf_name, _ in parts)
    # a weight the GPT has no place for (a bias config.json does not announce, ...) would be silently dropped; a tied
    # lm_head saved beside the embedding is the embedding
    if model.config.tie_embeddings and torch.equal(weights.get("lm_head.weight", weights["model.embed_tokens.weight"]),
                                                   weights["model.embed_tokens.weight"]):
        used.add("lm_head.weight")
    unused = sorted(k for k in set(weights) - used if not k.endswith("rotary_emb.inv_freq"))
    if unused:
        fail(f"{folder} has {len(unused)} weights the model of its config.json has no place for (first: {unused[0]})")
    return out


def from_folder(folder, hf, meta=False):
    """(the GPT of a local Llama, Qwen2 or Qwen3 folder whose config.json is hf, in float32; its folder_weights).
    meta: the GPT is built on the meta device and its weights are left unread, for parallel.fill."""
    with torch.device("meta") if meta else nullcontext():
        model = GPT(GPTConfig(**gpt_config(hf, os.path.join(folder, "config.json"))))
    weights = folder_weights(folder, hf, model)
    if not meta:
        state = model.state_dict()
        with torch.no_grad():
            for name, weight in weights.items():
                state[name].copy_(tensor_of(weight))
    return model, weights
