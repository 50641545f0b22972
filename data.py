"""Token datasets in nanoGPT's format: data/<name>/train.bin, val.bin (raw token ids, every document ended by an
end-of-text id) plus meta.json, or character ids plus meta.pkl (nanoGPT's shakespeare_char format).

Writing: every prepare_*.py hands its documents to write_dataset(), the one place that tokenizes (worker processes,
bounded memory) and writes bins atomically; write_char_dataset() is its character-level counterpart. The tokenizer:
- 'gpt2' (the default): tiktoken's GPT-2 encode_ordinary from the BPE files in gpt2_bpe/; every document is followed
  by EOT 50256; uint16 bins.
- a Hugging Face model folder (--tokenizer=DIR): its tokenizer.json through the `tokenizers` library, offline. Every
  document is the tokenizer's encoding of its text without special tokens (a special token's text in it is text),
  followed by the tokenizer's EOS
  (tokenizer_config.json's eos_token, else config.json's eos_token_id) and preceded by its BOS (bos_token /
  bos_token_id) where the tokenizer itself begins a text with one (tokenizer_config.json's add_bos_token, else what
  tokenizer.json's post-processor adds), as Llama's does and Qwen2's does not. meta.json records the folder
  (tokenizer), vocab_size (its highest id + 1), eot_token (the EOS: window_starts() finds documents by it, so with a
  BOS a window that starts at a document reads EOS, BOS, text), bos_token where one is written, and dtype: uint16
  where every id fits, else uint32.
Reading: open_tokens() (either dtype, as meta.json says), load_meta(), fixed_windows() for comparable eval losses
(window_starts() for windows that begin at a document), get_batch().
"""
import contextlib
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import pickle
import time

import numpy as np
import tiktoken
import torch
from tqdm import tqdm

from common import atomic_write, fail

EOT_TOKEN = 50256
DEFAULT_META = {"tokenizer": "gpt2", "vocab_size": 50257, "dtype": "uint16", "eot_token": EOT_TOKEN}
PARQUET_REVISION = "refs/convert/parquet"  # where the hub keeps its automatic Parquet conversion of a dataset
EOT_TEXT = "<|endoftext|>"  # how a character dataset's end-of-text id decodes
WINDOW_STARTS = ("anywhere", "document")  # where a training or eval window may begin (window_starts)
LOCAL_LOADERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}

# ----------------------------------------------------------------------------- writing

GPT2_BPE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpt2_bpe")  # OpenAI's files, shipped in the repo
GPT2_BPE_SHA256 = {"vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
                   "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"}
_encoding = None


def gpt2_encoding():
    """tiktoken's "gpt2" encoding, built as tiktoken_ext.openai_public builds it but from the files in gpt2_bpe/
    (checked against OpenAI's sha256), so it never downloads anything."""
    global _encoding
    if _encoding is None:
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str
        paths = {name: os.path.join(GPT2_BPE_DIR, name) for name in GPT2_BPE_SHA256}
        for name, path in paths.items():
            if not os.path.isfile(path) or sha256_file(path) != GPT2_BPE_SHA256[name]:
                fail(f"{path} is missing or not OpenAI's GPT-2 file (sha256 {GPT2_BPE_SHA256[name][:12]}...); "
                     "restore it with git checkout gpt2_bpe")
        cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = ""  # "": tiktoken reads the files in place instead of copying them to its cache
        try:
            ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=paths["vocab.bpe"], encoder_json_file=paths["encoder.json"])
        finally:
            if cache_dir is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
        _encoding = tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                                      special_tokens={ENDOFTEXT: EOT_TOKEN}, explicit_n_vocab=50257)
    return _encoding


def read_json(path):
    """A JSON file as a dict; {} where there is none."""
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            fail(f"{path} is not valid JSON ({e}); restore the model folder's copy")


def special_id(tok, folder, tokenizer_config, config, kind):
    """The id of the tokenizer's bos or eos (kind): tokenizer_config.json's bos_token/eos_token, the tokenizer's own
    word, else config.json's bos_token_id/eos_token_id (the first where it lists several); None where neither names one."""
    token = tokenizer_config.get(f"{kind}_token")
    token = token.get("content") if isinstance(token, dict) else token  # an AddedToken as transformers saves it
    if token is not None:
        if tok.token_to_id(token) is None:
            fail(f"{folder}/tokenizer_config.json names {kind}_token {token!r}, which its tokenizer.json does not have")
        return tok.token_to_id(token)
    token_id = config.get(f"{kind}_token_id")
    return (token_id or [None])[0] if isinstance(token_id, list) else token_id


_hf_tokenizers = {}


def hf_tokenizer(folder):
    """(tokenizers.Tokenizer of folder/tokenizer.json, the meta.json fields of a dataset it writes: tokenizer,
    vocab_size, dtype, eot_token and bos_token where one begins every document; see the module docstring). Loaded
    once per process."""
    folder = os.path.abspath(folder)
    if folder not in _hf_tokenizers:
        from tokenizers import Tokenizer
        path = os.path.join(folder, "tokenizer.json")
        if not os.path.isfile(path):
            fail(f"{folder} has no tokenizer.json; pass a Hugging Face model folder that holds one (a sentencepiece "
                 "tokenizer.model alone: save it as tokenizer.json with transformers' AutoTokenizer) or gpt2")
        try:
            tok = Tokenizer.from_file(path)
        except Exception as e:  # the Rust library's parse errors: one line, then stop
            fail(f"could not read {path} with the tokenizers library ({str(e).splitlines()[0][:200]})")
        tok.encode_special_tokens = True  # a document's literal "</s>" is text, as encode_ordinary reads "<|endoftext|>"
        tokenizer_config = read_json(os.path.join(folder, "tokenizer_config.json"))
        config = read_json(os.path.join(folder, "config.json"))
        eos = special_id(tok, folder, tokenizer_config, config, "eos")
        if eos is None:
            fail(f"{folder} names no end-of-text token (eos_token in tokenizer_config.json or eos_token_id in "
                 "config.json), the id written after every document; add one")
        bos = special_id(tok, folder, tokenizer_config, config, "bos")
        adds_bos = tokenizer_config.get("add_bos_token")
        if adds_bos is None:  # the post-processor's say: what the tokenizer puts before any text
            adds_bos = bos is not None and tok.encode("", add_special_tokens=True).ids[:1] == [bos]
        vocab_size = max(tok.get_vocab(with_added_tokens=True).values()) + 1
        meta = {"tokenizer": folder, "vocab_size": vocab_size,
                "dtype": "uint16" if vocab_size <= 1 << 16 else "uint32", "eot_token": eos}
        if adds_bos and bos is not None:
            meta["bos_token"] = bos
        _hf_tokenizers[folder] = tok, meta
    return _hf_tokenizers[folder]


def document_encoder(tokenizer):
    """(encode: text -> ids without special tokens, the meta.json fields of a dataset it writes) of 'gpt2' or a HF
    model folder."""
    if tokenizer == "gpt2":
        return gpt2_encoding().encode_ordinary, DEFAULT_META
    tok, meta = hf_tokenizer(tokenizer)
    return (lambda text: tok.encode(text, add_special_tokens=False).ids), meta


def dataset_name(name, tokenizer):
    """A dataset's folder under data_root: name for GPT-2 tokens, name_<tokenizer folder's name> for another
    tokenizer's, so that preparing a corpus with another tokenizer never replaces its GPT-2 bins."""
    return name if tokenizer == "gpt2" else f"{name}_{os.path.basename(os.path.normpath(tokenizer))}"


class BadDocument(ValueError):
    """A document that is not text; raised in a worker, turned into a one-line error by write_dataset."""


def encode_documents(texts, tokenizer="gpt2"):
    """One batch of documents -> (tokens, each document between the tokenizer's separators, number of documents).
    Runs in the workers."""
    encode, meta = document_encoder(tokenizer)
    bos = [] if meta.get("bos_token") is None else [meta["bos_token"]]
    ids = []
    for text in texts:
        if not isinstance(text, str):
            raise BadDocument(f"a document is {type(text).__name__}, not text; drop such rows or pick another --text_key")
        ids.extend(bos)
        ids.extend(encode(text))
        ids.append(meta["eot_token"])
    return np.array(ids, dtype=meta["dtype"]), len(texts)


def write_dataset(out_dir, splits, source, num_proc=1, doc_counts=None, extra_meta=None, tokenizer="gpt2"):
    """Tokenize `splits` ({'train': batches, 'val': batches}, each an iterable of lists of document texts) with
    `tokenizer` ('gpt2' or a HF model folder) into out_dir/<split>.bin and write out_dir/meta.json. Tokens stream to
    temp files, so memory stays bounded; nothing in out_dir changes unless every split is written (bins are renamed
    into place first, meta.json last)."""
    # loaded before the workers fork, so they share it and a missing or broken tokenizer fails here
    _, conventions = document_encoder(tokenizer)
    meta = dict(conventions, source=source)
    encode = functools.partial(encode_documents, tokenizer=tokenizer)
    doc_counts = doc_counts or {}
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:  # unwinds in reverse: bins replaced, workers stopped, meta.json replaced
        meta_tmp = stack.enter_context(atomic_write(os.path.join(out_dir, "meta.json")))
        # Pool.imap feeds the workers through a pipe, so a fast reader blocks instead of queueing the corpus in memory
        pool = stack.enter_context(multiprocessing.Pool(num_proc)) if num_proc > 1 else None
        for split, batches in splits.items():
            tmp = stack.enter_context(atomic_write(os.path.join(out_dir, f"{split}.bin")))
            encoded = pool.imap(encode, batches) if pool else map(encode, batches)
            n_tokens = n_docs = 0
            with open(tmp, "wb") as f, tqdm(total=doc_counts.get(split), desc=split, unit="doc", unit_scale=True) as bar:
                try:
                    for ids, n in encoded:
                        f.write(ids.tobytes())
                        n_tokens += len(ids)
                        n_docs += n
                        bar.update(n)
                except BadDocument as e:
                    fail(f"{source}, {split} split: {e}")
            if n_docs == 0:
                fail(f"the {split} split of {source} has no documents")
            meta[f"{split}_tokens"], meta[f"{split}_documents"] = n_tokens, n_docs
        meta.update(extra_meta or {})
        with open(meta_tmp, "w") as f:
            json.dump(meta, f, indent=2)
    dt = time.perf_counter() - t0
    total = sum(meta[f"{split}_tokens"] for split in splits)
    counts = ", ".join(f"{meta[f'{split}_tokens']:,} {split}" for split in splits)
    print(f"wrote {out_dir}: {counts} tokens in {dt:.1f}s ({total / dt:,.0f} tokens/s, num_proc={num_proc})")
    return meta


def write_char_dataset(out_dir, texts, source, extra_meta=None):
    """Character-level dataset in nanoGPT's shakespeare_char format: out_dir/<split>.bin (uint16 character ids) and
    meta.pkl (vocab_size, itos, stoi). texts = {'train': str, 'val': str}, or {'train': [documents], ...}: then every
    document is followed by one end-of-text id past the characters (meta's eot_token, decoded as EOT_TEXT), as the
    GPT-2 bins end every document with EOT. The vocabulary is every character of both splits, so no val character is
    unknown. Bins are renamed into place first, meta.pkl last."""
    documents = {split: [text] if isinstance(text, str) else list(text) for split, text in texts.items()}
    chars = sorted(set().union(*(set(doc) for docs in documents.values() for doc in docs)))
    stoi = {c: i for i, c in enumerate(chars)}
    itos = dict(enumerate(chars))
    eot = None if all(isinstance(text, str) for text in texts.values()) else len(chars)
    if eot is not None:
        itos[eot] = EOT_TEXT
    meta = {"vocab_size": len(itos), "itos": itos, "stoi": stoi, "tokenizer": "char", "source": source}
    if eot is not None:
        meta["eot_token"] = eot
    with contextlib.ExitStack() as stack:
        meta_tmp = stack.enter_context(atomic_write(os.path.join(out_dir, "meta.pkl")))
        for split, docs in documents.items():
            n = sum(map(len, docs)) + (len(docs) if eot is not None else 0)
            ids = np.empty(n, dtype=np.uint16)
            i = 0
            for doc in tqdm(docs, desc=split, unit="doc", mininterval=1, disable=len(docs) == 1):
                ids[i:i + len(doc)] = np.fromiter(map(stoi.__getitem__, doc), dtype=np.uint16, count=len(doc))
                i += len(doc)
                if eot is not None:
                    ids[i] = eot
                    i += 1
            ids.tofile(stack.enter_context(atomic_write(os.path.join(out_dir, f"{split}.bin"))))
            meta[f"{split}_tokens"] = n
        meta.update(extra_meta or {})
        with open(meta_tmp, "wb") as f:
            pickle.dump(meta, f)
    print(f"wrote {out_dir}: " + ", ".join(f"{meta[f'{split}_tokens']:,} {split}" for split in texts) +
          f" characters, vocabulary of {meta['vocab_size']}")
    return meta


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_hf_dataset(path, name=None, split="train", **kwargs):
    """datasets.load_dataset with a one-line error instead of a traceback."""
    from datasets import load_dataset  # here, not at the top: it takes seconds to import and the readers never need it
    try:
        return load_dataset(path, name or None, split=split, **kwargs)
    except Exception as e:  # offline, unknown dataset, legacy loading script, unreadable file...: say which, then stop
        dataset_error(e, kwargs.get("data_files") or path)


def load_hub_dataset(path, name=None, split="train", revision="", num_proc=None, allow_partial=False,
                     full_copy="its --dataset=/--revision="):
    """A Hugging Face hub dataset (or local dataset folder) and whether it is a partial Parquet conversion.
    The hub's automatic conversion (revision refs/convert/parquet) holds only the first 5 GB of a larger dataset,
    in partial-<split> folders; the data files are looked at before anything is downloaded, and such a conversion
    is a one-line error naming `full_copy` unless allow_partial. A loading script (datasets >= 4 runs none, and the
    original openwebtext repo has one) is a one-line error too, never a silent fallback to the partial conversion."""
    from datasets import __version__, load_dataset_builder  # what load_dataset runs, in steps, to see its data files
    try:
        builder = load_dataset_builder(path, name or None, revision=revision or None)
    except Exception as e:
        if isinstance(e, RuntimeError) and "scripts are no longer supported" in str(e):
            fail(f"datasets {__version__} runs no loading scripts and {path} has one; read a full Parquet copy instead "
                 f"({full_copy}); the hub's conversion, --revision={PARQUET_REVISION}, holds only the first 5 GB")
        dataset_error(e, path)
    files = (builder.config.data_files or {}).get(split) or []
    partial = any("/partial-" in file.replace(os.sep, "/") for file in files)
    if partial and not allow_partial:
        fail(f"{path} (revision {revision or 'main'}) is a partial Parquet conversion (partial-{split} files: the "
             f"first 5 GB only); read a full copy instead ({full_copy}) or pass --allow_partial=True to use it anyway")
    try:
        builder.download_and_prepare(num_proc=num_proc)
        return builder.as_dataset(split=split), partial
    except Exception as e:
        dataset_error(e, path)


def dataset_error(e, what):
    lines = str(e).strip().splitlines() or [""]
    fail(f"could not load {what!r} with datasets: {type(e).__name__}: {lines[0]}")


def load_local_files(files, text_key="text"):
    """Local files, in the given order, as one datasets.Dataset with a text_key column:
    .txt = one document per file (read as UTF-8 text, so Windows line ends become plain newlines),
    .jsonl/.json = one per line (field text_key), .parquet = one per row (column text_key)."""
    for path in files:
        if not os.path.isfile(path):
            fail(f"no such file: {path}")
        if os.path.splitext(path)[1].lower() not in LOCAL_LOADERS:
            fail(f"{path}: unknown file type; use {', '.join(LOCAL_LOADERS)}")
    from datasets import Value, concatenate_datasets
    parts = []
    for loader, group in itertools.groupby(files, key=lambda p: LOCAL_LOADERS[os.path.splitext(p)[1].lower()]):
        if loader == "text":
            ds = load_hf_dataset("text", data_files=list(group), sample_by="document")
            ds = ds.rename_column("text", text_key) if text_key != "text" else ds
        else:
            ds = load_hf_dataset(loader, data_files=list(group))
        parts.append(ds.select_columns([check_text_key(ds, text_key)]))
    if len({str(part.features[text_key]) for part in parts}) > 1:  # json gives string columns, pandas' parquet large_string
        parts = [part.cast_column(text_key, Value("large_string")) for part in parts]
    return concatenate_datasets(parts)


def check_text_key(ds, text_key):
    if ds.column_names is not None and text_key not in ds.column_names:
        fail(f"no column {text_key!r} in the data (it has {', '.join(ds.column_names)}); pass --text_key=NAME")
    feature = ds.features and ds.features[text_key]
    if feature and getattr(feature, "dtype", None) not in ("string", "large_string"):
        fail(f"column {text_key!r} holds {feature}, not text; pass --text_key=NAME")
    return text_key


def text_batches(ds, text_key="text", batch_size=1024):
    """Lists of document texts from a Hugging Face Dataset or IterableDataset, as write_dataset takes them."""
    check_text_key(ds, text_key)
    return (batch[text_key] for batch in ds.select_columns([text_key]).iter(batch_size=batch_size))

# ----------------------------------------------------------------------------- reading


def prepare_hint(data_dir):
    name = os.path.basename(os.path.normpath(data_dir))
    root = os.path.dirname(os.path.normpath(data_dir)) or "."
    if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), f"prepare_{name}.py")):
        return f"run python prepare_{name}.py --data_root={root}"
    return f"prepare it with a prepare_*.py script, e.g. python prepare_openwebtext.py --files=... --name={name} --data_root={root}"


def load_meta(data_dir):
    """meta.json of a dataset; a nanoGPT dir with meta.pkl (char-level) or with bins only works too."""
    if not os.path.isdir(data_dir):
        fail(f"no dataset at {data_dir}; {prepare_hint(data_dir)}")
    path = os.path.join(data_dir, "meta.json")
    if os.path.exists(path):
        with open(path) as f:
            try:
                return {**DEFAULT_META, **json.load(f)}
            except json.JSONDecodeError as e:
                fail(f"{path} is not valid JSON ({e}); {prepare_hint(data_dir)}")
    path = os.path.join(data_dir, "meta.pkl")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return {**DEFAULT_META, "tokenizer": "char", "eot_token": None, **pickle.load(f)}
    return dict(DEFAULT_META)


def open_tokens(data_dir, split):
    """The tokens of one split as a read-only np.memmap."""
    path = os.path.join(data_dir, f"{split}.bin")
    if not os.path.exists(path):
        fail(f"{path} not found; {prepare_hint(data_dir)}")
    meta = load_meta(data_dir)
    dtype = np.dtype(meta["dtype"])
    size = os.path.getsize(path)
    if size == 0 or size % dtype.itemsize:
        fail(f"{path} is empty or cut short ({size} bytes); {prepare_hint(data_dir)}")
    expected = meta.get(f"{split}_tokens", size // dtype.itemsize)
    if size // dtype.itemsize != expected:
        fail(f"{path} holds {size // dtype.itemsize:,} tokens but meta.json says {expected:,}; {prepare_hint(data_dir)}")
    return np.memmap(path, dtype=dtype, mode="r")


def check_fits(n_tokens, block_size, what="the split"):
    """A window takes block_size + 1 tokens (inputs and shifted targets); stop with a one-line error if they are not there."""
    if n_tokens < block_size + 1:
        fail(f"{what} has {n_tokens:,} tokens, fewer than block_size + 1 = {block_size + 1:,}; use a smaller block_size or more data")


def check_window_start(window_start):
    if window_start not in WINDOW_STARTS:
        fail(f"window_start must be one of {', '.join(WINDOW_STARTS)}, got {window_start!r}")


def window_starts(tokens, meta, window_start, block_size, what="the split"):
    """Where windows of block_size (+1) tokens may begin: None for 'anywhere' (every offset); for 'document', the
    offset of every end-of-text token that has a window after it (int64, ascending), so every window begins with the
    EOT that ends the previous document, as a BOS token begins a sequence. The scan reads the memmap in chunks."""
    check_window_start(window_start)
    if window_start == "anywhere":
        return None
    eot = meta.get("eot_token")
    if eot is None:
        fail(f"window_start='document' needs documents, but {what} has no end-of-text token (meta eot_token); "
             "prepare the dataset from documents or use window_start='anywhere'")
    chunk = 1 << 24
    starts = np.concatenate([np.flatnonzero(tokens[i:i + chunk] == eot).astype(np.int64) + i
                             for i in range(0, len(tokens), chunk)])
    starts = starts[starts < len(tokens) - block_size]
    if len(starts) == 0:
        fail(f"{what} has no end-of-text token followed by block_size={block_size} tokens, so no window can start at "
             "a document; use a smaller block_size or window_start='anywhere'")
    return starts


def fixed_windows(n_tokens, block_size, count, seed=1337, starts=None):
    """`count` window start offsets into a split of n_tokens tokens, anywhere or, given `starts` (window_starts()),
    among those. They depend only on the arguments, so every eval, run and model sees the same text."""
    check_fits(n_tokens, block_size)
    rng = np.random.default_rng(seed)
    if starts is None:
        return rng.integers(0, n_tokens - block_size, size=count, dtype=np.int64)
    return starts[rng.integers(0, len(starts), size=count)]


def get_batch(tokens, offsets, block_size, device):
    """Inputs x and targets y (int64, shape (len(offsets), block_size)) for the windows starting at `offsets`."""
    buf = tokens[np.asarray(offsets, dtype=np.int64)[:, None] + np.arange(block_size + 1)]
    buf = torch.from_numpy(buf.astype(np.int64))
    x, y = buf[:, :-1].contiguous(), buf[:, 1:].contiguous()
    if torch.device(device).type == "cuda":
        # pinned host memory lets the copy run asynchronously with the compute already queued
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)
