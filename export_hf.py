"""Write a checkpoint as a complete Hugging Face GPT-2 directory: config.json, model.safetensors, generation_config.json
and the GPT-2 tokenizer (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json).

    python export_hf.py --ckpt=out/shakespeare/ref_12 --out_dir=hf/ref_12
    lm_eval --model hf --model_args pretrained=hf/ref_12 --tasks arc_easy,piqa,sciq,hellaswag,lambada_openai

--ckpt takes whatever checkpoint.load_model reads: a ckpt.pt of this project or of nanoGPT (also an inherited one),
a run directory holding ckpt.pt, a local HF GPT-2 directory or 'gpt2*'. The result loads offline with
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

from checkpoint import load_model
from common import current_umask, fail, write_json
from configurator import configure
from data import EOT_TOKEN, GPT2_BPE_DIR


@dataclass
class ExportConfig:
    ckpt: str = ""  # checkpoint file, run directory, HF GPT-2 directory or 'gpt2*'
    out_dir: str = ""  # the HF directory to write
    overwrite: bool = False  # replace an existing out_dir


EOT = "<|endoftext|>"
GPT2_VOCAB = 50257
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


# GPT2Config entries of each GPTConfig field; a field added to GPTConfig must say here how it exports
HF_FIELDS = {
    "block_size": lambda v: {"n_positions": v},
    "vocab_size": lambda v: {"vocab_size": v},
    "n_layer": lambda v: {"n_layer": v},
    "n_head": lambda v: {"n_head": v},
    "n_embd": lambda v: {"n_embd": v, "n_inner": None},  # n_inner None: 4 * n_embd
    "dropout": lambda v: {"resid_pdrop": v, "embd_pdrop": v, "attn_pdrop": v},
    "bias": lambda v: {},  # GPT-2 always has biases: bias=False exports zeros (hf_state_dict)
    "scale_attn_by_inverse_layer_idx": lambda v: {"scale_attn_by_inverse_layer_idx": v},
    "gelu_approximate": lambda v: {"activation_function": "gelu_new" if v == "tanh" else "gelu"},  # "gelu": HF's exact GELU
}


def hf_config(cfg):
    """config.json of transformers' GPT2Config for a GPTConfig (GPT-2's defaults for everything model.py fixes)."""
    unknown = [f.name for f in fields(cfg) if f.name not in HF_FIELDS]
    if unknown:
        fail(f"export_hf.py cannot export the model field(s) {unknown}; add them to HF_FIELDS in export_hf.py")
    special = EOT_TOKEN if EOT_TOKEN < cfg.vocab_size else None  # transformers warns about ids outside the vocab
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        **{key: value for f in fields(cfg) for key, value in HF_FIELDS[f.name](getattr(cfg, f.name)).items()},
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "bos_token_id": special,
        "eos_token_id": special,
        "use_cache": True,
        "torch_dtype": "float32",
    }


def hf_state_dict(model):
    """GPT2LMHeadModel's weights: Conv1D layout (in, out), biases everywhere, lm_head left out (tied to wte)."""
    out = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.nn.Parameter) or name == "lm_head":
            continue
        w = weight.detach().float()
        out[f"{name}.weight"] = (w.t() if f"{name}.weight".endswith(CONV1D) else w).contiguous()
        if not isinstance(module, torch.nn.Embedding):
            # Linear and LayerNorm have a bias in GPT-2 even when this model was built with bias=False
            bias = module.bias.detach().float() if module.bias is not None else torch.zeros(w.shape[0])
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


def export(source, out_dir, overwrite=False):
    """Export the model at `source` to the HF directory out_dir; returns the model's GPTConfig."""
    if not source or not out_dir:
        fail("pass --ckpt=PATH (checkpoint, run directory or HF model) and --out_dir=DIR")
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not overwrite:
        fail(f"{out_dir} already exists; pass --overwrite=True to replace it or choose another --out_dir")
    model, info = load_model(source)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-export-")
    try:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(hf_config(model.config), f, indent=2)
        save_file(hf_state_dict(model), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        if model.config.vocab_size >= GPT2_VOCAB:
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
    config = export(cfg.ckpt, cfg.out_dir, cfg.overwrite)
    print(f"wrote {cfg.out_dir}: GPT-2 with {config.n_layer} layers, {config.n_head} heads, n_embd {config.n_embd}, "
          f"vocab {config.vocab_size}, context {config.block_size}"
          + (", GPT-2 tokenizer" if config.vocab_size >= GPT2_VOCAB else "; no tokenizer: the vocab is not GPT-2's"))
