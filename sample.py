"""
Sample from a trained model (nanoGPT's sample.py):
    python sample.py --init_from=out/shakespeare --start="ROMEO:" --num_samples=3 --max_new_tokens=200
    python sample.py --init_from=gpt2-xl --start=FILE:prompt.txt

init_from is anything checkpoint.load_model reads: a checkpoint file, a run directory holding ckpt.pt, 'gpt2*',
hf:owner/name or a local HF GPT-2, Llama or Qwen2 directory; 'resume' means out_dir, as in nanoGPT. The tokenizer is
the one named in the meta.json of the dataset the checkpoint was trained on (GPT-2's BPE, a HF model folder's
tokenizer.json, or a nanoGPT char-level meta.pkl), else an HF folder's own tokenizer.json, else GPT-2's BPE. An empty
prompt starts from the tokenizer's BOS where its documents begin with one, else from its end-of-text token.
Samples go to stdout, each followed by a line of dashes.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import itertools
import os
import sys

import tiktoken
import torch
from dataclasses import dataclass

from checkpoint import is_tokenizer_folder, load_model, tokenizer_meta
from common import fail, setup_device
from configurator import configure
from data import gpt2_encoding, hf_tokenizer


@dataclass
class SampleConfig:
    init_from: str = "resume"  # checkpoint file, run directory, 'gpt2*', hf:owner/name or HF directory; 'resume' = out_dir
    model_path: str = "auto"  # how an HF init_from runs: 'auto' (model.py where exact, else transformers), 'gpt' (model.py) or 'transformers' (any decoder)
    out_dir: str = "out"
    start: str = "\n"  # the prompt, or FILE:path to read it from a file; "" samples unconditionally (after BOS or <|endoftext|>)
    num_samples: int = 3
    max_new_tokens: int = 500
    temperature: float = 0.8  # < 1 sharper, > 1 more random
    top_k: int = 200  # keep the top_k most likely tokens at each step; 0 keeps all
    seed: int = 1337
    device: str = "auto"
    dtype: str = "auto"


def tokenizer_for(info):
    """(encode, decode, start, vocab_size) of the tokenizer the model reads: the one named in the meta.json of the
    dataset the checkpoint was trained on, else an HF model folder's own tokenizer.json, else GPT-2's BPE. encode
    begins a prompt as the dataset begins a document; start is the id an empty prompt starts from (None: none)."""
    meta = tokenizer_meta(info)
    if meta["tokenizer"] == "char":  # nanoGPT's shakespeare_char; a dataset of documents also has an end-of-text id
        stoi, itos = meta["stoi"], meta["itos"]
        unknown = "\ufffd"
        return (lambda s: [stoi[c] for c in s if c in stoi]), (lambda ids: "".join(itos.get(i, unknown) for i in ids)), \
            meta.get("eot_token"), meta["vocab_size"]
    if is_tokenizer_folder(meta["tokenizer"]):  # a HF folder's tokenizer.json (data.py)
        return hf_tokenizer_for(meta["tokenizer"])
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

    return (lambda s: enc.encode(s, allowed_special={"<|endoftext|>"})), decode, enc.eot_token, enc.n_vocab


def hf_tokenizer_for(folder):
    """tokenizer_for's four of a HF folder's tokenizer.json, with data.py's conventions: a prompt starts with the
    BOS where the tokenizer writes one, an empty one with the BOS or else the EOS; special tokens decode as text."""
    tok, meta = hf_tokenizer(folder)
    bos, vocab_size = meta.get("bos_token"), meta["vocab_size"]

    def decode(ids):
        # the tokenizers library drops ids it lacks (a vocab padded past the tokenizer's); show them as U+FFFD
        return "".join(tok.decode(list(run), skip_special_tokens=False) if known else "\ufffd" * len(list(run))
                       for known, run in itertools.groupby(ids, key=lambda i: i < vocab_size))

    def encode(text):
        return ([] if bos is None else [bos]) + tok.encode(text, add_special_tokens=False).ids

    return encode, decode, meta["eot_token"] if bos is None else bos, vocab_size


def main(cfg):
    if cfg.num_samples < 1 or cfg.max_new_tokens < 1:
        fail("num_samples and max_new_tokens must be at least 1")
    if cfg.temperature <= 0:
        fail(f"temperature must be positive, got {cfg.temperature}; use --top_k=1 for greedy decoding")
    device, device_type, _, autocast = setup_device(cfg.device, cfg.dtype)
    source = cfg.out_dir if cfg.init_from == "resume" else cfg.init_from
    model, info = load_model(source, device, cfg.model_path)
    model.eval()
    encode, decode, start_id, vocab_size = tokenizer_for(info)
    if vocab_size > model.config.vocab_size:
        fail(f"the tokenizer has {vocab_size:,} ids but the model's vocab_size is {model.config.vocab_size:,}, so it "
             "cannot read them all; sample with the tokenizer the model was trained with")

    start = cfg.start
    if start.startswith("FILE:"):
        path = start[len("FILE:"):]
        if not os.path.isfile(path):
            fail(f"prompt file {path} not found")
        with open(path, encoding="utf-8") as f:
            start = f.read()
    ids = encode(start)
    if not ids:
        if start_id is None:
            fail("the prompt is empty and this tokenizer has no end-of-text token to start from; pass --start=TEXT")
        ids = [start_id]

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
