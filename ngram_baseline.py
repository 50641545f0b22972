"""Scale markers for val losses: the unigram and bigram models of a dataset's train split, scored on the same fixed
val windows train.py evaluates on (a model below the bigram loss has learned more than adjacent-token statistics).

    python ngram_baseline.py --dataset=shakespeare_char --block_size=128 --eval_windows=256

Both are add-one smoothed counts of the train split: unigram p(y) = (c(y) + 1) / (N + V), bigram
p(y | x) = (c(x, y) + 1) / (c(x) + V), where x is the token before y inside the window, as the model sees it.
Losses are mean negative log-likelihoods in nats per token. Prints them and, with --out=PATH, writes them as JSON.
"""
import os
import sys
from dataclasses import dataclass

import numpy as np

from common import write_json
from configurator import configure
from data import fixed_windows, load_meta, open_tokens


@dataclass
class NgramConfig:
    dataset: str = 'shakespeare_char'
    data_root: str = 'data'
    block_size: int = 128  # the windows train.py evaluates on: the same block_size ...
    eval_windows: int = 256  # ... and number of windows (train.py: eval_iters * batch_size)
    out: str = ''  # JSON file for the results; '' = print only


def ngram_losses(train, val, vocab_size, block_size, eval_windows):
    """{'unigram': loss, 'bigram': loss} of add-one smoothed counts of `train`, on the fixed windows of `val`."""
    train = np.asarray(train, dtype=np.int64)
    offsets = fixed_windows(len(val), block_size, eval_windows)
    window = np.asarray(val, dtype=np.int64)[offsets[:, None] + np.arange(block_size + 1)]
    x, y = window[:, :-1].ravel(), window[:, 1:].ravel()
    counts = np.bincount(train, minlength=vocab_size)
    unigram = np.log(len(train) + vocab_size) - np.log(counts[y] + 1)
    # pairs as sorted int64 keys, so a 50257-token vocabulary needs no V x V table
    pair_keys, pair_counts = np.unique(train[:-1] * vocab_size + train[1:], return_counts=True)
    wanted = x * vocab_size + y
    at = np.searchsorted(pair_keys, wanted).clip(max=len(pair_keys) - 1)
    pair = np.where(pair_keys[at] == wanted, pair_counts[at], 0)
    context = np.bincount(train[:-1], minlength=vocab_size)
    bigram = np.log(context[x] + vocab_size) - np.log(pair + 1)
    return {'unigram': float(unigram.mean()), 'bigram': float(bigram.mean())}


if __name__ == '__main__':
    cfg = configure(NgramConfig, sys.argv[1:])
    data_dir = os.path.join(cfg.data_root, cfg.dataset)
    vocab_size = load_meta(data_dir)['vocab_size']
    losses = ngram_losses(open_tokens(data_dir, 'train'), open_tokens(data_dir, 'val'), vocab_size, cfg.block_size,
                          cfg.eval_windows)
    print(f"{data_dir}, {cfg.eval_windows} fixed val windows of {cfg.block_size} tokens: "
          f"unigram {losses['unigram']:.4f}, bigram {losses['bigram']:.4f} (nats per token)")
    if cfg.out:
        write_json({**losses, **{k: getattr(cfg, k) for k in ('dataset', 'block_size', 'eval_windows')}}, cfg.out)
