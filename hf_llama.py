"""Hugging Face Llama and Qwen2 folders (LlamaForCausalLM, Qwen2ForCausalLM: config.json + safetensors) as GPTs of
model.py, whose Llama settings (norm, position, mlp, n_kv_head, ...) compute the same function. No transformers needed.

checkpoint.load_model reads such folders (and hub snapshots of them); export_hf.py writes them back with hf_layout.
A config.json setting the GPT does not have (RoPE scaling, sliding-window attention, another activation, ...) is a
one-line error naming it: the import is exactly the HF model or nothing.
"""
import json
import os

import torch

from common import fail
from model import GPT, GPTConfig

MODEL_TYPES = ("llama", "qwen2")
# a RoPE entry of config.json that only names plain RoPE and its base
PLAIN_ROPE_KEYS = {"rope_type", "type", "rope_theta"}


def gpt_config(hf, where):
    """The GPTConfig arguments of a Llama or Qwen2 config.json (the dict hf, read from where)."""
    model_type = hf.get("model_type")
    heads, width = hf["num_attention_heads"], hf["hidden_size"]
    if hf.get("hidden_act", "silu") != "silu":
        fail(f"{where} sets hidden_act={hf['hidden_act']!r}; the GPT's SwiGLU uses silu only")
    kv_heads = hf.get("num_key_value_heads") or heads
    if kv_heads < 1 or heads % kv_heads:
        fail(f"{where} sets num_key_value_heads={kv_heads}, which does not divide num_attention_heads={heads}")
    if width % heads or hf.get("head_dim") not in (None, width // heads):
        fail(f"{where} sets head_dim={hf.get('head_dim')!r} with hidden_size={width} and num_attention_heads={heads}; "
             f"the GPT's head size is hidden_size / num_attention_heads")
    # transformers 4 writes rope_theta and rope_scaling, transformers 5 rope_parameters: accept plain RoPE in either
    for key in ("rope_scaling", "rope_parameters"):
        rope = hf.get(key) or {}
        if rope.get("rope_type", rope.get("type", "default")) != "default" or set(rope) - PLAIN_ROPE_KEYS:
            fail(f"{where} sets {key}={json.dumps(rope)}; the GPT has plain RoPE only (no scaling of any type)")
    rope_theta = (hf.get("rope_parameters") or {}).get("rope_theta", hf.get("rope_theta", 10000.0))
    if model_type == "qwen2":
        if hf.get("use_sliding_window"):
            fail(f"{where} sets use_sliding_window=true; the GPT attends to the whole context, without a sliding window")
        if any(t != "full_attention" for t in hf.get("layer_types") or []):
            fail(f"{where} has layer_types other than full_attention; the GPT attends to the whole context in every layer")
        bias, qkv_bias = False, True  # Qwen2: biases in q, k and v, none elsewhere
    else:
        attention_bias, mlp_bias = hf.get("attention_bias", False), hf.get("mlp_bias", False)
        if attention_bias != mlp_bias:
            fail(f"{where} sets attention_bias={attention_bias} and mlp_bias={mlp_bias}; the GPT has biases in all "
                 "Linears or in none (or in q, k and v alone, as Qwen2)")
        bias, qkv_bias = attention_bias, None
    return dict(block_size=hf["max_position_embeddings"], vocab_size=hf["vocab_size"], n_layer=hf["num_hidden_layers"],
                n_head=heads, n_embd=width, bias=bias, norm="rmsnorm", norm_eps=hf["rms_norm_eps"], position="rope",
                rope_theta=float(rope_theta), mlp="swiglu", mlp_hidden=hf["intermediate_size"], n_kv_head=kv_heads,
                tie_embeddings=hf.get("tie_word_embeddings", False), qkv_bias=qkv_bias)


# HF's modules inside model.layers.<i>. that make each GPT module inside transformer.h.<i>., in the order the GPT
# stacks them along its rows
BLOCK_LAYOUT = {
    "ln_1": ["input_layernorm"],
    "attn.c_attn": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    "attn.c_proj": ["self_attn.o_proj"],
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
    head_dim, hidden = c.n_embd // c.n_head, c.mlp_hidden or 4 * c.n_embd
    kv_rows = (c.n_kv_head or c.n_head) * head_dim
    rows = {"self_attn.q_proj": c.n_embd, "self_attn.k_proj": kv_rows, "self_attn.v_proj": kv_rows,
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


def read_safetensors(folder):
    """Every tensor of a HF folder: model.safetensors, or the shards model.safetensors.index.json lists."""
    from safetensors.torch import load_file
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.isfile(os.path.join(folder, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        fail(f"{folder} has no model.safetensors or model.safetensors.index.json; a Llama or Qwen2 folder needs its "
             "weights as safetensors")
    weights = {}
    for name in files:
        weights.update(load_file(os.path.join(folder, name)))
    return weights


def from_folder(folder, hf):
    """The GPT of a local Llama or Qwen2 folder whose config.json is hf, in float32."""
    model = GPT(GPTConfig(**gpt_config(hf, os.path.join(folder, "config.json"))))
    weights = read_safetensors(folder)
    state = model.state_dict()
    used = set()
    with torch.no_grad():
        for name, parts in hf_layout(model):
            missing = [hf_name for hf_name, _ in parts if hf_name not in weights]
            if missing:
                fail(f"{folder} lacks the weight {missing[0]}; is it a {hf['model_type']} *ForCausalLM checkpoint?")
            w = torch.cat([weights[hf_name] for hf_name, _ in parts])
            if w.shape != state[name].shape:
                fail(f"{folder}: {' + '.join(n for n, _ in parts)} has shape {tuple(w.shape)}, config.json implies "
                     f"{tuple(state[name].shape)}")
            state[name].copy_(w)
            used.update(hf_name for hf_name, _ in parts)
    # a weight the GPT has no place for (a bias config.json does not announce, ...) would be silently dropped; a tied
    # lm_head saved beside the embedding is the embedding
    if model.config.tie_embeddings and torch.equal(weights.get("lm_head.weight", weights["model.embed_tokens.weight"]),
                                                   weights["model.embed_tokens.weight"]):
        used.add("lm_head.weight")
    unused = sorted(k for k in set(weights) - used if not k.endswith("rotary_emb.inv_freq"))
    if unused:
        fail(f"{folder} has {len(unused)} weights the model of its config.json has no place for (first: {unused[0]})")
    return model
