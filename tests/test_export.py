"""export_hf.py: checkpoints of this project load in transformers with the same logits, and round-trip exactly."""
import json
import os

import pytest
import torch
from conftest import REPO, run_script

import export_hf
from checkpoint import save_checkpoint
from data import gpt2_encoding
from model import GPT, GPTConfig


def make_checkpoint(path, seed=0, **overrides):
    """A checkpoint as inherit.py writes it (no optimizer), with random biases/gains and sharp attention so that
    a wrong transpose, a dropped bias or a wrong attention scale would all show in the logits."""
    args = dict(block_size=32, vocab_size=50304, n_layer=3, n_head=4, n_embd=32, dropout=0.0, bias=True,
                scale_attn_by_inverse_layer_idx=False) | overrides
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**args))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
            elif "c_attn" in name:
                p.mul_(10)
    save_checkpoint({"model": model.state_dict(), "model_args": vars(model.config), "iter_num": 0, "best_val_loss": 1e9,
                     "config": {}}, path)
    return model.eval()


def hf_logits(out_dir, idx):
    from transformers import GPT2LMHeadModel
    hf, info = GPT2LMHeadModel.from_pretrained(str(out_dir), output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched weights
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()  # tied, as in GPT-2
    with torch.no_grad():
        return hf.eval()(idx).logits


@pytest.mark.parametrize("bias,scale", [(True, False), (False, True), (False, False), (True, True)])
def test_export_matches_transformers(tmp_path, bias, scale):
    run_dir = tmp_path / "run"
    model = make_checkpoint(run_dir / "ckpt.pt", bias=bias, scale_attn_by_inverse_layer_idx=scale)
    out = tmp_path / "hf"
    export_hf.export(str(run_dir), str(out))
    assert sorted(os.listdir(out)) == ["LICENSE.tokenizer", "config.json", "generation_config.json", "merges.txt",
                                       "model.safetensors", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp dirs left behind
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "gpt2" and cfg["architectures"] == ["GPT2LMHeadModel"]
    assert (cfg["vocab_size"], cfg["n_positions"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"]) == (50304, 32, 3, 4, 32)
    assert cfg["activation_function"] == "gelu_new" and cfg["layer_norm_epsilon"] == 1e-5
    assert cfg["scale_attn_by_inverse_layer_idx"] is scale
    assert cfg["bos_token_id"] == cfg["eos_token_id"] == 50256
    assert cfg["resid_pdrop"] == cfg["embd_pdrop"] == cfg["attn_pdrop"] == 0.0

    idx = torch.randint(0, 50257, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, _ = model(idx, targets=idx)
    ref = hf_logits(out, idx)
    assert torch.allclose(ref, ours, atol=1e-4, rtol=0), (ref - ours).abs().max()

    # round trip: model.py reads the export back with identical weights (and zero biases where it had none)
    back = GPT.from_pretrained(str(out))
    assert back.config.scale_attn_by_inverse_layer_idx == scale
    sd, sd_back = model.state_dict(), back.state_dict()
    for k, v in sd_back.items():
        assert torch.equal(v, sd[k]) if k in sd else (k.endswith(".bias") and torch.all(v == 0)), k
    assert set(sd) <= set(sd_back)


def test_export_of_nanogpt_checkpoint_file_and_small_vocab(tmp_path):
    """A nanoGPT checkpoint file (compiled: '_orig_mod.' keys) with a vocab too small to hold GPT-2's EOT id."""
    args = dict(block_size=16, vocab_size=65, n_layer=2, n_head=2, n_embd=16, dropout=0.2, bias=False)
    torch.manual_seed(0)
    model = GPT(GPTConfig(**args, gelu_approximate="none")).eval()  # nanoGPT's exact GELU
    ckpt = {"model": {"_orig_mod." + k: v for k, v in model.state_dict().items()}, "model_args": args,
            "iter_num": 5000, "best_val_loss": torch.tensor(1.47), "config": {"dataset": "shakespeare_char"}}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    out = tmp_path / "exported" / "hf"
    run_script("export_hf.py", f"--ckpt={tmp_path / 'ckpt.pt'}", f"--out_dir={out}")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["bos_token_id"] is None and cfg["eos_token_id"] is None
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]  # a character-level vocab: no GPT-2 tokenizer
    assert cfg["activation_function"] == "gelu"  # HF's exact GELU, so transformers computes what nanoGPT did
    assert cfg["resid_pdrop"] == 0.2  # the model's dropout; transformers applies it in train mode only
    idx = torch.randint(0, 65, (1, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours, _ = model(idx, targets=idx)
    assert torch.allclose(hf_logits(out, idx), ours, atol=1e-4, rtol=0)


def test_bad_inputs_write_nothing(tmp_path):
    out = tmp_path / "hf"
    proc = run_script("export_hf.py", f"--ckpt={tmp_path / 'missing.pt'}", f"--out_dir={out}", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ") and "not found" in lines[0], proc
    (tmp_path / "broken.pt").write_bytes(b"not a torch file")
    for source, words in [(tmp_path / "broken.pt", "could not read checkpoint"), ("", "pass --ckpt")]:
        with pytest.raises(SystemExit, match=words) as e:
            export_hf.export(str(source), str(out))
        assert str(e.value).startswith("error: ") and "\n" not in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ["broken.pt"]


def test_existing_out_dir_needs_overwrite(tmp_path):
    make_checkpoint(tmp_path / "a.pt", seed=0)
    make_checkpoint(tmp_path / "b.pt", seed=1)
    out = tmp_path / "hf"
    export_hf.export(str(tmp_path / "a.pt"), str(out))
    first = (out / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit, match="already exists"):
        export_hf.export(str(tmp_path / "b.pt"), str(out))
    assert (out / "model.safetensors").read_bytes() == first
    export_hf.export(str(tmp_path / "b.pt"), str(out), overwrite=True)
    assert (out / "model.safetensors").read_bytes() != first
    assert sorted(os.listdir(tmp_path)) == ["a.pt", "b.pt", "hf"]


def test_export_loads_offline_with_tokenizer_and_generates(tmp_path, monkeypatch):
    """AutoTokenizer + AutoModelForCausalLM from the folder alone (no hub): the tokenizer gives the repo's GPT-2 ids,
    greedy generation gives model.py's tokens, and everyone can read the files (umask 022)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = make_checkpoint(tmp_path / "ckpt.pt")
    old_umask = os.umask(0o022)
    try:
        export_hf.export(str(tmp_path / "ckpt.pt"), str(tmp_path / "hf"))
    finally:
        os.umask(old_umask)
    out = tmp_path / "hf"
    assert out.stat().st_mode & 0o777 == 0o755
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {p.name: 0o644 for p in out.iterdir()}
    assert (out / "vocab.json").read_bytes() == (REPO / "gpt2_bpe" / "encoder.json").read_bytes()
    assert (out / "merges.txt").read_bytes() == (REPO / "gpt2_bpe" / "vocab.bpe").read_bytes()

    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.eos_token == tok.bos_token == tok.unk_token == "<|endoftext|>" and tok.eos_token_id == 50256
    text = "To be, or not to be: that is the question.\nÜnïcödé — 🎭  spaces<|endoftext|>"
    assert tok(text)["input_ids"] == gpt2_encoding().encode(text, allowed_special="all")
    assert tok.decode(tok(text)["input_ids"]) == text

    hf = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    prompt = tok("ROMEO:", return_tensors="pt")
    with torch.no_grad():
        theirs = hf.generate(**prompt, max_new_tokens=8, do_sample=False)
        ours = model.generate(prompt["input_ids"], 8, top_k=1)
    assert theirs.tolist() == ours.tolist() and theirs.shape == (1, prompt["input_ids"].shape[1] + 8)
