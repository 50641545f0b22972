"""
Sample from a trained model (nanoGPT's sample.py):
    python sample.py --init_from=out/shakespeare --start="ROMEO:" --num_samples=3 --max_new_tokens=200
    python sample.py --init_from=gpt2-xl --start=FILE:prompt.txt

init_from is anything checkpoint.load_model reads: a checkpoint file, a run directory holding ckpt.pt, 'gpt2*' or a
local HF GPT-2 directory; 'resume' means out_dir, as in nanoGPT. The tokenizer is the one named in the meta.json of
the dataset the checkpoint was trained on (a nanoGPT char-level meta.pkl works too), else GPT-2's BPE.
Samples go to stdout, each followed by a line of dashes.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import os
import sys

import tiktoken
import torch
from dataclasses import dataclass

from checkpoint import load_model
from common import fail, setup_device
from configurator import configure
from data import gpt2_encoding, load_meta


@dataclass
class SampleConfig:
    init_from: str = "resume"  # checkpoint file, run directory, 'gpt2*' or HF GPT-2 directory; 'resume' = out_dir
    out_dir: str = "out"
    start: str = "\n"  # the prompt, or FILE:path to read it from a file; "" samples unconditionally (after <|endoftext|>)
    num_samples: int = 3
    max_new_tokens: int = 500
    temperature: float = 0.8  # < 1 sharper, > 1 more random
    top_k: int = 200  # keep the top_k most likely tokens at each step; 0 keeps all
    seed: int = 1337
    device: str = "auto"
    dtype: str = "auto"


def tokenizer_for(info):
    """(encode, decode, eot) for the dataset the checkpoint was trained on, GPT-2's BPE when that is unknown."""
    config = info.get("config") or {}
    meta = {"tokenizer": "gpt2"}
    if config.get("dataset"):
        data_dir = os.path.join(config.get("data_root", "data"), config["dataset"])
        if os.path.isdir(data_dir):
            meta = load_meta(data_dir)
    if meta["tokenizer"] == "char":  # nanoGPT's shakespeare_char; a dataset of documents also has an end-of-text id
        stoi, itos = meta["stoi"], meta["itos"]
        unknown = "\ufffd"
        return (lambda s: [stoi[c] for c in s if c in stoi]), (lambda ids: "".join(itos.get(i, unknown) for i in ids)), \
            meta.get("eot_token")
    if meta["tokenizer"] == "gpt2":
        enc = gpt2_encoding()
    else:
        try:
            enc = tiktoken.get_encoding(meta["tokenizer"])
        except Exception as e:
            fail(f"cannot load tokenizer {meta['tokenizer']!r} named by the dataset's meta.json ({type(e).__name__})")

    def decode(ids):
        # ids the tokenizer lacks (GPT-2's vocab padded 50257 -> 50304, only an untrained model samples them) show as U+FFFD
        pieces = (enc.decode_single_token_bytes(i) if i < enc.n_vocab else "\ufffd".encode() for i in ids)
        return b"".join(pieces).decode("utf-8", errors="replace")

    return (lambda s: enc.encode(s, allowed_special={"<|endoftext|>"})), decode, enc.eot_token


def main(cfg):
    if cfg.num_samples < 1 or cfg.max_new_tokens < 1:
        fail("num_samples and max_new_tokens must be at least 1")
    if cfg.temperature <= 0:
        fail(f"temperature must be positive, got {cfg.temperature}; use --top_k=1 for greedy decoding")
    device, device_type, _, autocast = setup_device(cfg.device, cfg.dtype)
    source = cfg.out_dir if cfg.init_from == "resume" else cfg.init_from
    model, info = load_model(source, device)
    model.eval()
    encode, decode, eot = tokenizer_for(info)

    start = cfg.start
    if start.startswith("FILE:"):
        path = start[len("FILE:"):]
        if not os.path.isfile(path):
            fail(f"prompt file {path} not found")
        with open(path, encoding="utf-8") as f:
            start = f.read()
    ids = encode(start)
    if not ids:
        if eot is None:
            fail("the prompt is empty and this tokenizer has no end-of-text token to start from; pass --start=TEXT")
        ids = [eot]
    if max(ids) >= model.config.vocab_size:
        fail(f"the prompt has token id {max(ids)} but the model's vocab_size is {model.config.vocab_size}; is it the right tokenizer?")

    torch.manual_seed(cfg.seed)
    torch.cuda.manual_seed(cfg.seed)
    x = torch.tensor(ids, dtype=torch.long, device=device)[None, ...]
    with torch.no_grad(), autocast:
        for _ in range(cfg.num_samples):
            y = model.generate(x, cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k or None)
            print(decode(y[0].tolist()))
            print("---------------")


if __name__ == "__main__":
    main(configure(SampleConfig, sys.argv[1:]))
