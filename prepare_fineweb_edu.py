"""FineWeb-Edu sample-10BT (the paper's second dataset) as GPT-2 tokens, streamed: the dataset is read as it
downloads, so neither memory nor disk ever holds more of it than a few batches of documents.

    python prepare_fineweb_edu.py             # -> data/fineweb_edu/: ~10B tokens (~20 GB of bins)
    python prepare_fineweb_edu.py --tokenizer=path/to/Qwen2.5-0.5B   # -> data/fineweb_edu_Qwen2.5-0.5B/ (uint32 bins)

Val split: the first val_docs documents of the stream (~5M tokens; the sample's own file order, so it is the same on
every run), train: all the documents after them.
"""
import os
import sys
from dataclasses import dataclass

from configurator import configure
from data import dataset_name, document_encoder, load_hf_dataset, text_batches, write_dataset


@dataclass
class PrepareConfig:
    dataset: str = "HuggingFaceFW/fineweb-edu"  # Hugging Face dataset id or local dataset folder
    config_name: str = "sample-10BT"
    text_key: str = "text"
    val_docs: int = 5000
    tokenizer: str = "gpt2"  # 'gpt2' (tiktoken's GPT-2 BPE) or a Hugging Face model folder whose tokenizer.json to use (data.py)
    name: str = ""  # output folder under data_root; '' = fineweb_edu, or fineweb_edu_<folder name> with --tokenizer=DIR
    data_root: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    num_proc: int = min(8, os.cpu_count())


if __name__ == "__main__":
    cfg = configure(PrepareConfig, sys.argv[1:])
    document_encoder(cfg.tokenizer)  # a bad --tokenizer fails before the stream opens
    ds = load_hf_dataset(cfg.dataset, cfg.config_name, split="train", streaming=True)
    n_docs = ds.info.splits["train"].num_examples if ds.info.splits and "train" in ds.info.splits else None
    write_dataset(os.path.join(cfg.data_root, cfg.name or dataset_name("fineweb_edu", cfg.tokenizer)),
                  {"val": text_batches(ds.take(cfg.val_docs), cfg.text_key),
                   "train": text_batches(ds.skip(cfg.val_docs), cfg.text_key)},
                  source=f"Hugging Face dataset {cfg.dataset} ({cfg.config_name}), streamed",
                  num_proc=cfg.num_proc, doc_counts={"val": cfg.val_docs, "train": n_docs and n_docs - cfg.val_docs},
                  tokenizer=cfg.tokenizer,
                  extra_meta={"dataset": cfg.dataset, "config_name": cfg.config_name,
                              "val_split": f"the first {cfg.val_docs} documents of the stream; train: the rest"})
