"""OpenWebText for GPT-2 the nanoGPT way, and any other Hugging Face dataset or local text files the same way.

    python prepare_openwebtext.py             # -> data/openwebtext/: ~9B train, ~4.4M val tokens (~17 GB of bins)
    python prepare_openwebtext.py --dataset=roneneldan/TinyStories --name=tinystories
    python prepare_openwebtext.py --files='a.jsonl,b.txt' --name=mycorpus --test_size=0.01
    python prepare_openwebtext.py --tokenizer=path/to/Llama-3.2-1B   # -> data/openwebtext_Llama-3.2-1B/ (uint32 bins)

Val split as nanoGPT's: train_test_split(test_size=0.0005, seed=2357, shuffle=True) of the `split` split, 'test'
renamed 'val'.

OpenWebText: nanoGPT read Skylion007/openwebtext through its loading script, which datasets >= 4 no longer runs,
and the hub's automatic Parquet conversion of it (--revision=refs/convert/parquet) holds only the first 5 GB of its
~40 GB (~1.1B of the ~9B train tokens). So the default is dvruette/openwebtext, a full Parquet copy on a repo's main
branch; a Parquet pull-request branch of the original (--revision=refs/pr/N) would do too, but it is unmerged, can be
closed, and its number could not be looked up offline. Two checks stand in for trusting the copy: the split must
hold OpenWebText's 8,013,769 documents (--expected_documents), and the token counts are printed beside nanoGPT's
(both go into meta.json): the same counts, to the token, say the same documents in the same order, so nanoGPT's split.
Not verified offline, with the hub out of reach: that dvruette/openwebtext has a 'train' split with a 'text' column
of 8,013,769 documents in the original order, and that datasets reads the hub's partial conversion as partial-<split>
files (tested on a local folder laid out that way).
A partial conversion is a one-line error unless --allow_partial=True, which prepares it with a warning and
partial: true in meta.json; a dataset with a loading script is a one-line error naming a full copy.
Local --files: .txt = one document per file (UTF-8 text), .jsonl/.json = one per line (field
--text_key), .parquet = one per row (column --text_key).
"""
import os
import sys
from dataclasses import dataclass

from common import fail
from configurator import configure
from data import dataset_name, document_encoder, load_hub_dataset, load_local_files, sha256_file, text_batches, write_dataset

OPENWEBTEXT_DOCUMENTS = 8_013_769  # Skylion007/openwebtext's one split; nanoGPT's prepare.py splits it 8,009,762 + 4,007
# the token counts nanoGPT's prepare.py printed for that split (test_size=0.0005, seed=2357)
NANOGPT_TOKENS = {"source": "nanoGPT's data/openwebtext/prepare.py", "train": 9_035_582_198, "val": 4_434_897}


@dataclass
class PrepareConfig:
    dataset: str = "dvruette/openwebtext"  # Hugging Face dataset id or local folder, read when files is ''; default: full OpenWebText
    config_name: str = ""  # the dataset's configuration, where it has several
    revision: str = ""  # branch, tag or commit of the dataset repo; '' = its main branch
    split: str = "train"  # the split that is divided into train and val
    files: str = ""  # comma-separated local files to read instead of `dataset`
    text_key: str = "text"  # the column (or jsonl field) that holds the documents
    name: str = ""  # output folder under data_root; '' = the last part of `dataset`, + _<folder name> with --tokenizer=DIR (required with files)
    test_size: float = 0.0005  # fraction of documents for val
    seed: int = 2357
    data_root: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    num_proc: int = min(8, os.cpu_count())
    tokenizer: str = "gpt2"  # 'gpt2' (tiktoken's GPT-2 BPE) or a Hugging Face model folder whose tokenizer.json to use (data.py)
    expected_documents: int = -1  # documents the split must hold; -1 = 8,013,769 for a dataset named openwebtext, else no check; 0 = no check
    allow_partial: bool = False  # True: prepare a partial Parquet conversion (the first 5 GB of a larger dataset), with a warning


if __name__ == "__main__":
    cfg = configure(PrepareConfig, sys.argv[1:])
    if not 0 < cfg.test_size < 1:
        fail(f"test_size={cfg.test_size} must be a fraction between 0 and 1, such as 0.0005")
    document_encoder(cfg.tokenizer)  # a bad --tokenizer fails before anything is downloaded
    corpus = cfg.dataset.rstrip("/").split("/")[-1]
    openwebtext = not cfg.files and corpus.lower() == "openwebtext"
    reference = openwebtext and cfg.tokenizer == "gpt2"  # nanoGPT's token counts are GPT-2 tokens
    expected = cfg.expected_documents
    if expected == -1:
        expected = OPENWEBTEXT_DOCUMENTS if openwebtext else 0
    full_copy = (f"--dataset={PrepareConfig.dataset}, the default, or another's --dataset=/--revision=" if openwebtext
                 else "its --dataset=/--revision=")
    partial = False
    if cfg.files:
        if not cfg.name:
            fail("--files needs --name=NAME, the dataset's folder under data_root")
        files = [path for path in cfg.files.split(",") if path]
        ds = load_local_files(files, cfg.text_key)
        source = "local files: " + ", ".join(files)
        provenance = {"files": [{"path": os.path.abspath(path), "sha256": sha256_file(path)} for path in files]}
    else:
        ds, partial = load_hub_dataset(cfg.dataset, cfg.config_name, split=cfg.split, revision=cfg.revision,
                                       num_proc=cfg.num_proc, allow_partial=cfg.allow_partial, full_copy=full_copy)
        source = f"Hugging Face dataset {cfg.dataset}" + (f" (revision {cfg.revision})" if cfg.revision else "")
        provenance = {**{key: getattr(cfg, key) for key in ("dataset", "config_name", "split", "revision")}, "partial": partial}
    if partial:  # allowed: a smaller corpus, said here and in meta.json
        print(f"warning: {source} is a partial Parquet conversion, {len(ds):,} documents from the first 5 GB of the "
              f"dataset{f' (the full one has {expected:,})' if expected else ''}; meta.json records partial: true")
    elif expected and len(ds) != expected:  # before anything is written: a partial or different copy
        fail(f"the {cfg.split} split of {source} has {len(ds):,} documents, not {expected:,}; read a full copy instead "
             f"({full_copy}) or pass --expected_documents=0 to skip the check")
    try:
        parts = ds.train_test_split(test_size=cfg.test_size, seed=cfg.seed, shuffle=True)
    except ValueError as e:  # too few documents for this test_size
        fail(f"cannot split {len(ds)} documents into train and val: {e}")
    train, val = parts["train"], parts["test"]
    meta = write_dataset(os.path.join(cfg.data_root, cfg.name or dataset_name(corpus, cfg.tokenizer)),
                         {"train": text_batches(train, cfg.text_key), "val": text_batches(val, cfg.text_key)},
                         source=source, num_proc=cfg.num_proc, doc_counts={"train": len(train), "val": len(val)},
                         tokenizer=cfg.tokenizer,
                         extra_meta={**provenance, "val_split": f"train_test_split(test_size={cfg.test_size}, "
                                                                f"seed={cfg.seed}, shuffle=True)",
                                     **({"reference_tokens": NANOGPT_TOKENS} if reference else {})})
    if reference:  # equal counts: nanoGPT's documents, in its order, split as it split them
        same = all(meta[f"{split}_tokens"] == NANOGPT_TOKENS[split] for split in ("train", "val"))
        print(f"tokens: train {meta['train_tokens']:,}, val {meta['val_tokens']:,}; {NANOGPT_TOKENS['source']}: "
              f"train {NANOGPT_TOKENS['train']:,}, val {NANOGPT_TOKENS['val']:,}"
              + ("" if same else " (not the same: other documents, order or split)"))
