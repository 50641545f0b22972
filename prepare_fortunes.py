"""Debian's fortune cookies: ~15,000 short documents (median ~100 characters), a corpus of many document starts for
windows that begin at one (train.py --window_start=document), where attention sinks form (docs/lazy_layers.md).

    apt-get install fortunes fortunes-min           # Debian's packages: the files in /usr/share/games/fortunes
    python prepare_fortunes.py                      # -> data/fortunes_char/ (characters, an end-of-text id after each fortune)
    python prepare_fortunes.py --tokenizer=gpt2     # -> data/fortunes/ (GPT-2 tokens, EOT after each fortune)
    python prepare_fortunes.py --tokenizer=path/to/Llama-3.2-1B   # -> data/fortunes_Llama-3.2-1B/ (its tokens, data.py)

Documents: every fortune of every file in --fortune_dir (strfile's format: fortunes separated by lines holding only
"%"; the .dat indexes, the .u8 links and subfolders such as off/ are not read), trailing blank lines stripped, empty
ones dropped. Val: every 20th fortune in file order (sorted file names), ~5%; train: the rest.
"""
import os
import sys
from dataclasses import dataclass

from common import fail
from configurator import configure
from data import dataset_name, write_char_dataset, write_dataset

EVERY_NTH_TO_VAL = 20


@dataclass
class PrepareFortunesConfig:
    fortune_dir: str = '/usr/share/games/fortunes'  # Debian's fortunes, fortunes-min (and other fortunes-*) packages
    data_root: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    tokenizer: str = 'char'  # 'char' -> data_root/fortunes_char, 'gpt2' -> data_root/fortunes, a HF model folder -> data_root/fortunes_<its name>


def fortune_files(fortune_dir):
    """The fortune text files of a folder: its regular files that are neither strfile indexes (.dat) nor links."""
    if not os.path.isdir(fortune_dir):
        fail(f"no folder {fortune_dir}; install Debian's fortune files (apt-get install fortunes fortunes-min) or pass --fortune_dir")
    paths = [os.path.join(fortune_dir, name) for name in sorted(os.listdir(fortune_dir)) if not name.endswith('.dat')]
    paths = [p for p in paths if os.path.isfile(p) and not os.path.islink(p)]
    if not paths:
        fail(f"{fortune_dir} holds no fortune files; install Debian's fortunes package or pass --fortune_dir")
    return paths


def read_fortunes(paths):
    """Every fortune of the files, in order."""
    fortunes = []
    for path in paths:
        try:
            with open(path, encoding='utf-8') as f:
                text = f.read()
        except UnicodeDecodeError as e:
            fail(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); remove it from {os.path.dirname(path)} or convert it")
        lines = []
        for line in text.splitlines() + ['%']:  # a line holding only '%' ends a fortune; the file's end ends the last
            if line == '%':
                fortune = '\n'.join(lines).strip('\n')
                if fortune.strip():
                    fortunes.append(fortune)
                lines = []
            else:
                lines.append(line)
    return fortunes


if __name__ == "__main__":
    cfg = configure(PrepareFortunesConfig, sys.argv[1:])
    if cfg.tokenizer not in ('char', 'gpt2') and not os.path.isdir(cfg.tokenizer):
        fail(f"tokenizer must be 'char' or 'gpt2' or a Hugging Face model folder with a tokenizer.json, got {cfg.tokenizer!r}")
    paths = fortune_files(cfg.fortune_dir)
    fortunes = read_fortunes(paths)
    split = {'train': [f for i, f in enumerate(fortunes) if i % EVERY_NTH_TO_VAL],
             'val': fortunes[::EVERY_NTH_TO_VAL]}
    if not split['train'] or not split['val']:
        fail(f"{cfg.fortune_dir} holds {len(fortunes)} fortune(s), too few for a val split of every {EVERY_NTH_TO_VAL}th; "
             "install more fortune files (apt-get install fortunes)")
    source = f"fortune files {', '.join(os.path.basename(p) for p in paths)} from {cfg.fortune_dir}"
    extra = {"documents": "one per fortune", "val_split": f"every {EVERY_NTH_TO_VAL}th fortune in file order; train: the rest"}
    if cfg.tokenizer == 'char':
        write_char_dataset(os.path.join(cfg.data_root, "fortunes_char"), split, source, extra_meta=extra)
    else:
        batches = {name: [docs[i:i + 1024] for i in range(0, len(docs), 1024)] for name, docs in split.items()}
        write_dataset(os.path.join(cfg.data_root, dataset_name("fortunes", cfg.tokenizer)), batches, source, extra_meta=extra,
                      doc_counts={name: len(docs) for name, docs in split.items()}, tokenizer=cfg.tokenizer)
