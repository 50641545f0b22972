"""Llama 3.x and Qwen3 as settings of model.py's GPT (rope_scaling of type llama3, head_dim apart from n_embd / n_head,
per-head q/k norms), HF folders read in either transformers' config names and weight formats, broken folders as
one-line errors, and KD from a teacher whose vocabulary differs by padding rows only. Tiny random HF models built
with transformers in tmp dirs (offline); each family's options away from their defaults so they matter."""
import copy
import json
import shutil

import numpy as np
import pytest
import torch

import export_hf
import inherit
from checkpoint import load_model
from conftest import REPO, run_script
from configurator import configure
from losses import LossSpec, fused_loss, plain_loss
from model import rope_frequencies
from test_llama import (LLAMA_FLAGS, TOKENS, edit_config, gpt_logits, hf_logits, narrowed_hf_weights, step_losses,
                        train_args, write_hf)
from test_tokenizers import STYLES, write_model_dir
from train import TrainConfig, train

# Llama 3.2-style: tied, GQA, RoPE scaled as Llama 3 from an original context of 32, shorter than TOKENS' 48, so the
# scaled frequencies matter; head size 16, so the frequencies fall in all three bands (kept, blended, divided)
LLAMA3_ROPE = dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=32)
LLAMA3 = dict(vocab_size=96, hidden_size=64, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=True,
              rope_parameters=dict(LLAMA3_ROPE, rope_theta=500.0))
# Qwen3: 4 heads of head_dim 16 in a model 48 wide (not 48 / 4), q/k norms (write_hf makes their gains non-unit), tied
QWEN3 = dict(vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=True,
             rope_parameters=dict(rope_type="default", rope_theta=20000.0))
FAMILIES = {"llama3": ("llama", LLAMA3), "qwen3": ("qwen3", QWEN3)}


def write_family(path, family, **overrides):
    kind, base = FAMILIES[family]
    return write_hf(path, kind, base=base, **overrides)


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_dir(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    return path, write_family(path, request.param)


def copy_folder(path, to):
    shutil.copytree(path, to)
    return to


def test_logits_equal_transformers(family_dir):
    path, hf = family_dir
    model, _ = load_model(str(path))
    c = model.config
    if hf.config.model_type == "llama":
        assert c.rope_scaling == LLAMA3_ROPE and (c.head_dim, c.qk_norm, c.tie_embeddings) == (None, False, True)
    else:
        assert (c.rope_scaling, c.head_dim, c.qk_norm, c.rope_theta) == (None, 16, True, 20000.0)
        attn = model.transformer.h[0].attn
        assert attn.c_attn.weight.shape == ((4 + 2 * 2) * 16, 48) and attn.c_proj.weight.shape == (48, 64)
        assert attn.q_norm.weight.shape == (16,) and not torch.equal(attn.q_norm.weight, torch.ones(16))
    # RoPE's frequencies are transformers' own, and so are the logits over positions past the original context
    torch.testing.assert_close(rope_frequencies(c, "cpu"), hf.model.rotary_emb.inv_freq, rtol=0, atol=0)
    ref = hf_logits(hf)
    assert torch.allclose(gpt_logits(model), ref, atol=1e-5), (gpt_logits(model) - ref).abs().max()


def test_export_reloads_in_transformers_with_equal_logits(family_dir, tmp_path):
    from transformers import AutoModelForCausalLM
    path, hf = family_dir
    out = tmp_path / "export"
    export_hf.export(str(path), str(out))
    written = json.loads((out / "config.json").read_text())
    # transformers 5's names as it writes them itself (transformers 4's rope_scaling beside them)
    assert written["model_type"] == hf.config.model_type and written["rope_parameters"] == hf.config.rope_parameters
    back, loading = AutoModelForCausalLM.from_pretrained(str(out), output_loading_info=True, dtype=torch.float32)
    assert not any(loading.values()), loading  # no missing, unexpected or mismatched weights
    assert type(back) is type(hf) and back.config.rope_parameters == hf.config.rope_parameters
    assert back.config.head_dim == hf.config.head_dim
    assert torch.allclose(hf_logits(back.eval()), hf_logits(hf), atol=1e-5)
    again, original = load_model(str(out))[0], load_model(str(path))[0]
    assert again.config == original.config


def test_transformers_4_config_names_read_the_same(family_dir, tmp_path):
    # transformers 4 wrote rope_theta beside the config and the scaling as rope_scaling (older ones with "type")
    path, hf = family_dir
    folder = copy_folder(path, tmp_path / "v4")
    config = json.loads((folder / "config.json").read_text())
    rope = config.pop("rope_parameters")
    config["rope_theta"] = rope.pop("rope_theta")
    rope_type = rope.pop("rope_type")
    config["rope_scaling"] = None if rope_type == "default" else {"type": rope_type, **rope}
    (folder / "config.json").write_text(json.dumps(config))
    v4, v5 = load_model(str(folder))[0], load_model(str(path))[0]
    assert v4.config == v5.config
    assert torch.equal(gpt_logits(v4), gpt_logits(v5))


def save_weights(folder, weights, file_format, shards):
    """weights as model.safetensors or pytorch_model.bin, or in that many shards listed by an index json."""
    from safetensors.torch import save_file
    stem, suffix, save = {"safetensors": ("model", "safetensors", save_file),
                          "bin": ("pytorch_model", "bin", torch.save),
                          "legacy bin": ("pytorch_model", "bin",  # torch's format before 1.6, which cannot be mapped
                                         lambda w, p: torch.save(w, p, _use_new_zipfile_serialization=False))}[file_format]
    if shards == 1:
        save(weights, folder / f"{stem}.{suffix}")
        return
    names = sorted(weights)
    weight_map = {name: f"{stem}-{i % shards + 1:05d}-of-{shards:05d}.{suffix}" for i, name in enumerate(names)}
    for file in set(weight_map.values()):
        save({k: weights[k] for k in names if weight_map[k] == file}, folder / file)
    (folder / f"{stem}.{suffix}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def refiled(path, to, file_format, shards):
    """A copy of the HF folder path with its weights saved again in file_format, in that many shards."""
    from safetensors.torch import load_file
    folder = copy_folder(path, to)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    save_weights(folder, weights, file_format, shards)
    return folder


@pytest.mark.parametrize("file_format,shards", [("bin", 1), ("bin", 2), ("legacy bin", 1), ("safetensors", 3)])
def test_weight_formats(family_dir, tmp_path, file_format, shards):
    path, hf = family_dir
    folder = refiled(path, tmp_path / "hf", file_format, shards)
    model, _ = load_model(str(folder))
    assert torch.allclose(gpt_logits(model), hf_logits(hf), atol=1e-5)


def cut_file(path):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def drop_config_key(folder, key):
    config = json.loads((folder / "config.json").read_text())
    del config[key]
    (folder / "config.json").write_text(json.dumps(config))


BROKEN = {  # name: (file format, shards, how it breaks, the error's words)
    "cut safetensors": ("safetensors", 1, lambda f: cut_file(f / "model.safetensors"), "could not read"),
    "cut bin shard": ("bin", 2, lambda f: cut_file(f / "pytorch_model-00002-of-00002.bin"), "could not read"),
    "no hidden_size": ("safetensors", 1, lambda f: drop_config_key(f, "hidden_size"), "lacks 'hidden_size'"),
    "missing shard": ("safetensors", 2, lambda f: (f / "model-00001-of-00002.safetensors").unlink(),
                      "names the shard model-00001-of-00002.safetensors"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_folders_are_one_line_errors_that_write_nothing(tmp_path, case):
    file_format, shards, breaks, words = BROKEN[case]
    source = tmp_path / "source"
    write_family(source, "qwen3")
    folder = refiled(source, tmp_path / "broken", file_format, shards)
    breaks(folder)
    proc = run_script("export_hf.py", f"--ckpt={folder}", f"--out_dir={tmp_path / 'out'}", check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "source"]  # nothing written


def test_an_unknown_model_type_lists_the_types_read_here(tmp_path):
    write_family(tmp_path, "qwen3")
    edit_config(tmp_path, model_type="gemma2")
    with pytest.raises(SystemExit) as e:
        load_model(str(tmp_path))
    msg = str(e.value)
    assert msg.startswith("error: ") and "\n" not in msg and "'gemma2'" in msg and "gpt2, llama, qwen2, qwen3" in msg, msg


@pytest.mark.parametrize("rope", [dict(rope_type="yarn", factor=4.0, rope_theta=1e4),
                                  dict(LLAMA3_ROPE, rope_theta=1e4, attention_factor=2.0)])
def test_other_rope_scaling_is_a_one_line_error_naming_its_type(tmp_path, rope):
    write_family(tmp_path, "llama3")
    edit_config(tmp_path, rope_parameters=rope)
    with pytest.raises(SystemExit) as e:
        load_model(str(tmp_path))
    msg = str(e.value)
    assert msg.startswith("error: ") and "\n" not in msg and f"rope_type {rope['rope_type']!r}" in msg, msg


def transformers_cut(hf, k):
    """transformers' own model of hf with its layer list cut to the first k layers."""
    cut = copy.deepcopy(hf)
    cut.model.layers = cut.model.layers[:k]
    cut.config.num_hidden_layers = k
    return cut.eval()


def test_inheriting_the_first_blocks_equals_transformers_cut_model(family_dir, tmp_path):
    path, hf = family_dir
    inherit.main([f"--source={path}", "--inherit_layers=2", f"--out={tmp_path / 'two.pt'}"])
    target, _ = load_model(str(tmp_path / "two.pt"))
    assert target.config.n_layer == 2
    assert torch.allclose(gpt_logits(target), hf_logits(transformers_cut(hf, 2)), atol=1e-5)


def test_half_width_of_qwen3_keeps_head_dim(tmp_path):
    # 2 of 4 query heads (1 of 2 key/value heads) of head_dim 16 and 24 of 48 dimensions: n_head and n_embd narrow
    # apart, as transformers' Qwen3 of that shape computes with the sliced weights
    from transformers import Qwen3Config, Qwen3ForCausalLM
    hf = write_family(tmp_path / "hf", "qwen3")
    inherit.main([f"--source={tmp_path / 'hf'}", "--inherit_layers=2", "--inherit_n_head=2", "--inherit_n_embd=24",
                  f"--out={tmp_path / 'narrow.pt'}"])
    target, _ = load_model(str(tmp_path / "narrow.pt"))
    assert (target.config.n_head, target.config.n_kv_head, target.config.n_embd, target.config.head_dim) == (2, 1, 24, 16)
    small = Qwen3ForCausalLM(Qwen3Config(**(QWEN3 | dict(hidden_size=24, num_attention_heads=2, num_key_value_heads=1,
                                                         intermediate_size=40, num_hidden_layers=2))))
    small.load_state_dict(narrowed_hf_weights(hf, layers=2, heads=2, kv_heads=1, width=24, hidden=40))
    assert torch.allclose(gpt_logits(target), hf_logits(small.eval()), atol=1e-5)


@pytest.fixture(scope="module")
def own_tokens(tmp_path_factory):
    """(data_root, a tiny Qwen2 folder with a 320-token BPE trained on the repo's docs): data_root/docs holds the
    docs in that BPE (meta.json naming the folder), the one tokenizer of the KD runs below."""
    root = tmp_path_factory.mktemp("own_tokens")
    text = "".join(p.read_text() for p in sorted((REPO / "docs").glob("*.md")))
    tok = write_model_dir(root / "student", text, "qwen2")
    eos = STYLES["qwen2"]["eos"]
    ids = np.array([i for doc in text.split("\n\n") for i in (*tok.encode(doc).ids, eos)], dtype=np.uint16)
    (root / "docs").mkdir()
    split = len(ids) * 9 // 10
    ids[:split].tofile(root / "docs" / "train.bin")
    ids[split:].tofile(root / "docs" / "val.bin")
    meta = {"tokenizer": str(root / "student"), "vocab_size": tok.get_vocab_size(), "dtype": "uint16", "eot_token": eos}
    (root / "docs" / "meta.json").write_text(json.dumps(meta))
    return root, root / "student"


def test_train_py_trains_qwen3_and_llama3_settings_from_flags(own_tokens, tmp_path):
    root, _ = own_tokens
    scaling = dict(LLAMA3_ROPE, original_max_position_embeddings=16)  # the runs' 32 tokens pass it
    flags = [*LLAMA_FLAGS, "--head_dim=12", "--qk_norm=True", f"--rope_scaling={scaling}", "--dataset=docs"]
    train(configure(TrainConfig, train_args(root, tmp_path, *flags)))
    losses = step_losses(tmp_path)
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.5, losses
    args = torch.load(tmp_path / "ckpt.pt", weights_only=True)["model_args"]
    assert (args["head_dim"], args["qk_norm"], args["rope_scaling"]) == (12, True, scaling)
    model, _ = load_model(str(tmp_path))
    assert model.transformer.h[1].attn.k_norm.weight.shape == (12,)
    # all three at once export as a Qwen3 with Llama 3's RoPE scaling, which transformers computes alike
    from transformers import AutoModelForCausalLM
    export_hf.export(str(tmp_path), str(tmp_path / "hf"))
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"), dtype=torch.float32)
    assert hf.config.model_type == "qwen3" and hf.config.rope_parameters["rope_type"] == "llama3"
    idx = TOKENS[:, :32]
    assert torch.allclose(gpt_logits(model, idx), hf_logits(hf.eval(), idx), atol=1e-5)


def padded_teacher(path, student_folder, vocab_size):
    """A Qwen3 teacher of vocab_size rows reading the student folder's tokenizer: rows past its 320 ids are padding."""
    hf = write_family(path, "qwen3", vocab_size=vocab_size, hidden_size=32, intermediate_size=48, num_hidden_layers=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(student_folder / name, path / name)
    return hf


def test_kd_from_a_teacher_with_padding_rows_ignores_them(own_tokens, tmp_path):
    # the teacher's 64 padding rows (random, so they would count) change nothing: the logged CE and KD are those of
    # the same teacher cut to the 320 ids, bit for bit (the same matmuls on the same rows)
    root, student = own_tokens
    padded = padded_teacher(tmp_path / "padded", student, 384)
    cut = copy_folder(tmp_path / "padded", tmp_path / "cut")
    edit_config(cut, vocab_size=320)
    from safetensors.torch import save_file
    save_file({k: v[:320] if k == "model.embed_tokens.weight" else v.contiguous() for k, v in padded.state_dict().items()
               if k != "lm_head.weight"}, cut / "model.safetensors")
    terms = {}
    for teacher in ("padded", "cut"):
        out_dir = tmp_path / f"run_{teacher}"
        train(configure(TrainConfig, train_args(root, out_dir, "--dataset=docs", f"--init_from={student}",
                                                f"--teacher={tmp_path / teacher}", "--max_iters=2", "--eval_interval=2")))
        with open(out_dir / "metrics.jsonl") as f:
            terms[teacher] = [(m["ce"], m["kd"]) for m in map(json.loads, f) if "loss" in m]
    assert len(terms["padded"]) == 2 and terms["padded"][0][1] > 0.01
    assert terms["padded"] == terms["cut"]


def test_kd_teacher_of_another_tokenizer_is_one_line_error(own_tokens, tmp_path):
    root, student = own_tokens
    padded_teacher(tmp_path / "teacher", student, 384)
    (tmp_path / "teacher" / "tokenizer.json").unlink()  # its vocabulary's ids unknown: the extra rows may be tokens
    with pytest.raises(SystemExit) as e:
        train(configure(TrainConfig, train_args(root, tmp_path / "run", "--dataset=docs", f"--init_from={student}",
                                                f"--teacher={tmp_path / 'teacher'}")))
    msg = str(e.value)
    assert msg.startswith("error: teacher ") and "\n" not in msg and "vocab_size 384" in msg and "padding" in msg, msg


@pytest.mark.parametrize("larger", ["teacher", "student"])
@pytest.mark.parametrize("fused", [True, False])
def test_kd_softmaxes_leave_out_the_larger_vocabularys_padding_rows(larger, fused):
    torch.manual_seed(0)
    N, C, C_TEACHER, V, PAD, T = 40, 16, 24, 96, 32, 2.0
    h, targets = torch.randn(N, C, requires_grad=True), torch.randint(0, V, (N,))
    weight = torch.randn(V + (PAD if larger == "student" else 0), C, requires_grad=True)
    teacher_h = torch.randn(N, C_TEACHER)
    teacher_weight = torch.randn(V + (PAD if larger == "teacher" else 0), C_TEACHER)
    spec = LossSpec(fused=fused, teacher_hidden=teacher_h, teacher_weight=teacher_weight, kd_alpha=0.4,
                    kd_temperature=T, chunk_tokens=16)
    loss, terms = (fused_loss(h, weight, targets, spec) if fused else plain_loss(h @ weight.t(), targets, spec))
    # by hand: KD over the first V ids of both; CE over all of the student's own
    log_pt = torch.log_softmax(teacher_h @ teacher_weight[:V].t() / T, -1)
    log_ps = torch.log_softmax(h @ weight[:V].t() / T, -1)
    kd = T ** 2 * (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean()
    ce = torch.nn.functional.cross_entropy(h @ weight.t(), targets)
    torch.testing.assert_close(terms["kd"], kd.detach())
    torch.testing.assert_close(terms["ce"], ce.detach())
    loss.backward()
    by_hand = [g.clone() for g in torch.autograd.grad(0.6 * ce + 0.4 * kd, (h, weight))]
    torch.testing.assert_close(h.grad, by_hand[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(weight.grad, by_hand[1], rtol=1e-4, atol=1e-6)
