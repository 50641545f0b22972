"""OpenWebText for GPT-2 the nanoGPT way, and any other Hugging Face dataset or local text files the same way.

    python prepare_openwebtext.py             # -> data/openwebtext/: ~9B train, ~4.4M val tokens (~17 GB of bins)
    python prepare_openwebtext.py --dataset=roneneldan/TinyStories --name=tinystories
    python prepare_openwebtext.py --files='a.jsonl,b.txt' --name=mycorpus --test_size=0.01

Val split as nanoGPT's: train_test_split(test_size=0.0005, seed=2357, shuffle=True) of the `split` split, 'test'
renamed 'val'. A hub dataset whose loading script the installed datasets refuses (datasets >= 4 runs none, and
openwebtext has one) is read from the hub's Parquet conversion (revision refs/convert/parquet), with a note. That
conversion holds at most the first 5 GB of a dataset that was not Parquet already (openwebtext has ~40 GB of text),
so its documents, and the seeded split of them, are not nanoGPT's; pass --revision=REV to read another revision.
Local --files: .txt = one document per file (UTF-8 text), .jsonl/.json = one per line (field
--text_key), .parquet = one per row (column --text_key).
"""
import os
import sys

from common import fail
from configurator import configure
from data import load_hub_dataset, load_local_files, sha256_file, text_batches, write_dataset

defaults = dict(
    dataset="openwebtext",  # Hugging Face dataset id or local dataset folder, read when files is ''
    config_name="",  # the dataset's configuration, where it has several
    revision="",  # branch, tag or commit of the dataset repo; '' = the default branch (its Parquet conversion if datasets refuses its script)
    split="train",  # the split that is divided into train and val
    files="",  # comma-separated local files to read instead of `dataset`
    text_key="text",  # the column (or jsonl field) that holds the documents
    name="",  # output folder under data_root; '' = the last part of `dataset` (required with files)
    test_size=0.0005,  # fraction of documents for val
    seed=2357,
    data_root=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"),
    num_proc=min(8, os.cpu_count()),
)

if __name__ == "__main__":
    cfg = configure(defaults, sys.argv[1:])
    if not 0 < cfg["test_size"] < 1:
        fail(f"test_size={cfg['test_size']} must be a fraction between 0 and 1, such as 0.0005")
    if cfg["files"]:
        if not cfg["name"]:
            fail("--files needs --name=NAME, the dataset's folder under data_root")
        files = [path for path in cfg["files"].split(",") if path]
        ds = load_local_files(files, cfg["text_key"])
        source = "local files: " + ", ".join(files)
        provenance = {"files": [{"path": os.path.abspath(path), "sha256": sha256_file(path)} for path in files]}
    else:
        ds, revision = load_hub_dataset(cfg["dataset"], cfg["config_name"], split=cfg["split"], revision=cfg["revision"],
                                        num_proc=cfg["num_proc"])
        source = f"Hugging Face dataset {cfg['dataset']}" + (f" (revision {revision})" if revision else "")
        provenance = {**{key: cfg[key] for key in ("dataset", "config_name", "split")}, "revision": revision}
    try:
        parts = ds.train_test_split(test_size=cfg["test_size"], seed=cfg["seed"], shuffle=True)
    except ValueError as e:  # too few documents for this test_size
        fail(f"cannot split {len(ds)} documents into train and val: {e}")
    train, val = parts["train"], parts["test"]
    write_dataset(os.path.join(cfg["data_root"], cfg["name"] or cfg["dataset"].rstrip("/").split("/")[-1]),
                  {"train": text_batches(train, cfg["text_key"]), "val": text_batches(val, cfg["text_key"])},
                  source=source, num_proc=cfg["num_proc"], doc_counts={"train": len(train), "val": len(val)},
                  extra_meta={**provenance, "val_split": f"train_test_split(test_size={cfg['test_size']}, "
                                                         f"seed={cfg['seed']}, shuffle=True)"})
