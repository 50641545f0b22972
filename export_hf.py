"""Write a checkpoint as a complete Hugging Face GPT-2 directory: config.json, model.safetensors, generation_config.json
and the GPT-2 tokenizer (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json). A model with the
Llama settings (rmsnorm, rope, swiglu) becomes a Llama directory instead, a Qwen3 one where it has q/k norms, or a
Qwen2 one where it has q/k/v biases and no others. A model that runs through transformers (hf_adapter.py: a checkpoint
of one, or --model_path=transformers) is written by transformers' own save_pretrained, its config with the layer lists
as inherited. The tokenizer the model reads comes along (checkpoint.tokenizer_meta, as sample.py finds it): the HF
folder's tokenizer files of the dataset the checkpoint was trained on, or of the HF folder it is or was inherited from;
else the GPT-2 tokenizer, never written for a Llama-settings model.

    python export_hf.py --ckpt=out/shakespeare/ref_12 --out_dir=hf/ref_12
    lm_eval --model hf --model_args pretrained=hf/ref_12 --tasks arc_easy,piqa,sciq,hellaswag,lambada_openai

--ckpt takes whatever checkpoint.load_model reads: a ckpt.pt of this project or of nanoGPT (also an inherited one),
a run directory holding ckpt.pt, a local HF GPT-2, Llama, Qwen2 or Qwen3 directory, 'gpt2*' or 'hf:owner/name'. The result loads offline with
transformers' AutoModelForCausalLM and AutoTokenizer.from_pretrained(out_dir) and gives the same logits as model.py.
The tokenizer files are the repo's gpt2_bpe/ files (vocab.json = encoder.json, merges.txt = vocab.bpe) with
<|endoftext|> as bos, eos and unk token, as on the hub's gpt2; a model whose vocab cannot hold GPT-2's 50257 tokens
(nanoGPT's character-level models) gets no tokenizer.
Models trained with bias=False get zero biases, which is the same function in GPT-2's always-biased layout.
out_dir is built in a temp directory beside it and renamed into place at the end: a failed export leaves nothing.
Files and folder get the permissions the umask gives new files, as any other output.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import json
import os
import shutil
import sys
import tempfile

import torch
from dataclasses import dataclass, fields
from safetensors.torch import save_file

from checkpoint import is_tokenizer_folder, load_model, tokenizer_meta
from common import current_umask, fail, write_json
from configurator import configure
from data import EOT_TOKEN, GPT2_BPE_DIR
from hf_adapter import AdapterConfig, HFModel
from hf_llama import hf_layout


@dataclass
class ExportConfig:
    ckpt: str = ""  # checkpoint file, run directory, HF GPT-2/Llama/Qwen2/Qwen3 directory, 'gpt2*' or 'hf:owner/name'
    out_dir: str = ""  # the HF directory to write
    overwrite: bool = False  # replace an existing out_dir
    model_path: str = "auto"  # how an HF ckpt runs: 'auto' (model.py where exact, else transformers), 'gpt' (model.py) or 'transformers' (any decoder)


EOT = "<|endoftext|>"
GPT2_VOCAB = 50257
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "generation_config.json")  # copied from the tokenizer's HF folder


def only(cfg, architecture, field, *values):
    """The entry of a field the architecture does not have: none, where the value is one that computes the same."""
    if getattr(cfg, field) not in values:
        fail(f"{architecture} has no {field}={getattr(cfg, field)!r} (only {' or '.join(map(repr, values))}), so "
             "export_hf.py cannot write this model")
    return {}


# the config.json entries of each GPTConfig field in a GPT-2 and in a Llama, Qwen2 or Qwen3 export, entry(cfg); a field
# added to GPTConfig must say in both how it exports
HF_FIELDS = {
    "block_size": lambda c: {"n_positions": c.block_size},
    "vocab_size": lambda c: {"vocab_size": c.vocab_size},
    "n_layer": lambda c: {"n_layer": c.n_layer},
    "n_head": lambda c: {"n_head": c.n_head},
    "n_embd": lambda c: {"n_embd": c.n_embd},
    "dropout": lambda c: {"resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": c.dropout},
    "bias": lambda c: {},  # GPT-2 always has biases: bias=False exports zeros (hf_state_dict)
    "scale_attn_by_inverse_layer_idx": lambda c: {"scale_attn_by_inverse_layer_idx": c.scale_attn_by_inverse_layer_idx},
    "gelu_approximate": lambda c: {"activation_function": "gelu_new" if c.gelu_approximate == "tanh" else "gelu"},  # "gelu": HF's exact GELU
    "norm": lambda c: only(c, "GPT-2", "norm", "layernorm"),
    "norm_eps": lambda c: {"layer_norm_epsilon": c.norm_eps},
    "position": lambda c: only(c, "GPT-2", "position", "learned"),
    "rope_theta": lambda c: {},  # unused without RoPE
    "mlp": lambda c: only(c, "GPT-2", "mlp", "gelu"),
    "mlp_hidden": lambda c: {"n_inner": c.mlp_hidden},  # None: 4 * n_embd
    "n_kv_head": lambda c: only(c, "GPT-2", "n_kv_head", None, c.n_head),
    "tie_embeddings": lambda c: {"tie_word_embeddings": c.tie_embeddings},
    "qkv_bias": lambda c: {},  # as bias: zeros where the model has none
    "head_dim": lambda c: only(c, "GPT-2", "head_dim", None),
    "qk_norm": lambda c: only(c, "GPT-2", "qk_norm", False),
    "rope_scaling": lambda c: {},  # None without RoPE (GPTConfig)
}
LLAMA_FIELDS = {
    "block_size": lambda c: {"max_position_embeddings": c.block_size},
    "vocab_size": lambda c: {"vocab_size": c.vocab_size},
    "n_layer": lambda c: {"num_hidden_layers": c.n_layer},
    "n_head": lambda c: {"num_attention_heads": c.n_head},
    "n_embd": lambda c: {"hidden_size": c.n_embd},
    "dropout": lambda c: {"attention_dropout": c.dropout},  # Llama drops out attention weights only
    "bias": lambda c: llama_biases(c),
    "scale_attn_by_inverse_layer_idx": lambda c: only(c, "Llama", "scale_attn_by_inverse_layer_idx", False),
    "gelu_approximate": lambda c: {},  # unused by SwiGLU
    "norm": lambda c: only(c, "Llama", "norm", "rmsnorm"),
    "norm_eps": lambda c: {"rms_norm_eps": c.norm_eps},
    "position": lambda c: only(c, "Llama", "position", "rope"),
    # transformers 5 reads rope_parameters, 4 rope_theta and rope_scaling (which 5 prefers where it is set)
    "rope_theta": lambda c: {"rope_theta": c.rope_theta,
                             "rope_parameters": {"rope_type": "default", **(c.rope_scaling or {}), "rope_theta": c.rope_theta}},
    "rope_scaling": lambda c: {"rope_scaling": c.rope_scaling} if c.rope_scaling else {},
    "mlp": lambda c: only(c, "Llama", "mlp", "swiglu"),
    "mlp_hidden": lambda c: {"intermediate_size": c.mlp_hidden or 4 * c.n_embd},
    "n_kv_head": lambda c: {"num_key_value_heads": c.n_kv_head or c.n_head},
    "tie_embeddings": lambda c: {"tie_word_embeddings": c.tie_embeddings},
    "qkv_bias": lambda c: {} if family(c) == "qwen2" else only(c, ARCHITECTURE_NAMES[family(c)], "qkv_bias", None, c.bias),
    "head_dim": lambda c: {"head_dim": c.head_size},
    "qk_norm": lambda c: {},  # Qwen3's q_norm and k_norm: its model_type says so (family)
}
ARCHITECTURE_NAMES = {"llama": "Llama", "qwen2": "Qwen2", "qwen3": "Qwen3"}


def is_llama(cfg):
    """A model with any of the Llama settings exports as Llama (or Qwen2, Qwen3); LLAMA_FIELDS checks it has all of them."""
    return (cfg.norm, cfg.position, cfg.mlp) != ("layernorm", "learned", "gelu")


def family(cfg):
    """The model_type a Llama-settings model exports as: Qwen3 with q/k norms, Qwen2 with biases in q, k and v and
    nowhere else, else Llama; LLAMA_FIELDS refuses what that architecture does not compute."""
    if cfg.qk_norm:
        return "qwen3"
    return "qwen2" if cfg.qkv_bias is True and not cfg.bias else "llama"


def llama_biases(cfg):
    """Llama has attention_bias and mlp_bias, here alike; Qwen2's q/k/v biases come with its model_type; Qwen3's
    attention_bias would put one on o_proj too without any in the MLP, which the GPT does not have."""
    model_type = family(cfg)
    if model_type == "qwen3":
        return only(cfg, "Qwen3", "bias", False)
    return {} if model_type == "qwen2" else {"attention_bias": cfg.bias, "mlp_bias": cfg.bias}


def config_entries(cfg, table):
    """config.json entries of every GPTConfig field by the table (HF_FIELDS or LLAMA_FIELDS)."""
    unknown = [f.name for f in fields(cfg) if f.name not in table]
    if unknown:
        fail(f"export_hf.py cannot export the model field(s) {unknown}; add them to HF_FIELDS and LLAMA_FIELDS in export_hf.py")
    return {key: value for f in fields(cfg) for key, value in table[f.name](cfg).items()}


def llama_config(cfg):
    """config.json of transformers' LlamaConfig, Qwen2Config or Qwen3Config for a GPTConfig with the Llama settings."""
    model_type = family(cfg)
    return {"architectures": [f"{ARCHITECTURE_NAMES[model_type]}ForCausalLM"], "model_type": model_type,
            **config_entries(cfg, LLAMA_FIELDS),
            "hidden_act": "silu", "initializer_range": 0.02, "bos_token_id": None, "eos_token_id": None,
            "use_cache": True, "torch_dtype": "float32"}


def llama_state_dict(model):
    """LlamaForCausalLM's (or Qwen2's, Qwen3's) weights: c_attn and c_fc split into their q/k/v and gate/up rows."""
    state = model.state_dict()
    out = {}
    for name, parts in hf_layout(model):
        w = state[name].detach().float()
        pieces = w.split([rows for _, rows in parts]) if len(parts) > 1 else [w]
        out.update({hf_name: piece.contiguous() for (hf_name, _), piece in zip(parts, pieces)})
    return out


def hf_config(cfg):
    """config.json of transformers' GPT2Config for a GPTConfig (GPT-2's defaults for everything model.py fixes)."""
    special = EOT_TOKEN if EOT_TOKEN < cfg.vocab_size else None  # transformers warns about ids outside the vocab
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        **config_entries(cfg, HF_FIELDS),
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "reorder_and_upcast_attn": False,
        "bos_token_id": special,
        "eos_token_id": special,
        "use_cache": True,
        "torch_dtype": "float32",
    }


def hf_state_dict(model):
    """GPT2LMHeadModel's weights: Conv1D layout (in, out), biases everywhere, lm_head left out where tied to wte."""
    out = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.nn.Parameter) or (name == "lm_head" and model.config.tie_embeddings):
            continue
        w = weight.detach().float()
        out[f"{name}.weight"] = (w.t() if f"{name}.weight".endswith(CONV1D) else w).contiguous()
        if not isinstance(module, torch.nn.Embedding):
            # Linear and LayerNorm have a bias in GPT-2 even when this model was built with bias=False
            bias = module.bias.detach().float() if module.bias is not None else torch.zeros(w.shape[0])
            if name != "lm_head":  # GPT-2's lm_head has no bias
                out[f"{name}.bias"] = bias.contiguous()
    return out


def write_tokenizer(out_dir, block_size):
    """GPT-2's tokenizer files, as transformers' GPT2Tokenizer(Fast) reads them."""
    shutil.copyfile(os.path.join(GPT2_BPE_DIR, "encoder.json"), os.path.join(out_dir, "vocab.json"))
    shutil.copyfile(os.path.join(GPT2_BPE_DIR, "vocab.bpe"), os.path.join(out_dir, "merges.txt"))
    shutil.copyfile(os.path.join(GPT2_BPE_DIR, "LICENSE"), os.path.join(out_dir, "LICENSE.tokenizer"))
    special = {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT}
    write_json(special, os.path.join(out_dir, "special_tokens_map.json"))
    write_json({"tokenizer_class": "GPT2Tokenizer", **special, "model_max_length": block_size, "add_prefix_space": False,
                "add_bos_token": False, "errors": "replace"}, os.path.join(out_dir, "tokenizer_config.json"))
    write_json({"bos_token_id": EOT_TOKEN, "eos_token_id": EOT_TOKEN}, os.path.join(out_dir, "generation_config.json"))


def export(source, out_dir, overwrite=False, model_path="auto"):
    """Export the model at `source` to the HF directory out_dir; returns the model's config (GPTConfig, or an
    HFModel's AdapterConfig)."""
    if not source or not out_dir:
        fail("pass --ckpt=PATH (checkpoint, run directory or HF model) and --out_dir=DIR")
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not overwrite:
        fail(f"{out_dir} already exists; pass --overwrite=True to replace it or choose another --out_dir")
    model, info = load_model(source, model_path=model_path)
    transformers_model = isinstance(model, HFModel)  # transformers writes its own folder
    llama = not transformers_model and is_llama(model.config)
    if not transformers_model:
        config = llama_config(model.config) if llama else hf_config(model.config)  # before any file: it may refuse
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-export-")
    try:
        if transformers_model:  # config.json with the layer lists as cut, model.safetensors in transformers' names
            model.hf.save_pretrained(tmp)
        else:
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump(config, f, indent=2)
            save_file(llama_state_dict(model) if llama else hf_state_dict(model), os.path.join(tmp, "model.safetensors"),
                      metadata={"format": "pt"})
        tokenizer = tokenizer_meta(info)["tokenizer"]
        if is_tokenizer_folder(tokenizer):
            for name in TOKENIZER_FILES:
                if os.path.isfile(os.path.join(tokenizer, name)):
                    shutil.copyfile(os.path.join(tokenizer, name), os.path.join(tmp, name))
        elif not llama and not transformers_model and model.config.vocab_size >= GPT2_VOCAB:
            write_tokenizer(tmp, model.config.block_size)
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private
        for name in os.listdir(tmp):  # and safetensors writes 0600
            os.chmod(os.path.join(tmp, name), 0o666 & ~current_umask())
        if os.path.exists(out_dir):  # overwrite: move the old one aside first, so out_dir is never half-written
            old = tempfile.mkdtemp(dir=parent, prefix=".old-export-")
            os.replace(out_dir, os.path.join(old, "dir"))
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model.config


if __name__ == "__main__":
    cfg = configure(ExportConfig, sys.argv[1:])
    config = export(cfg.ckpt, cfg.out_dir, cfg.overwrite, cfg.model_path)
    gpt = not isinstance(config, AdapterConfig)
    architecture = config.architecture if not gpt else ARCHITECTURE_NAMES[family(config)] if is_llama(config) else "GPT-2"
    copied = os.path.isfile(os.path.join(cfg.out_dir, "tokenizer.json"))
    tokenizer = ("; its tokenizer files" if copied else "; no tokenizer" if not gpt or is_llama(config) else ", GPT-2 tokenizer"
                 if config.vocab_size >= GPT2_VOCAB else "; no tokenizer: the vocab is not GPT-2's")
    print(f"wrote {cfg.out_dir}: {architecture} with {config.n_layer} layers, {config.n_head} heads, n_embd {config.n_embd}, "
          f"vocab {config.vocab_size}, context {config.block_size}{tokenizer}")
