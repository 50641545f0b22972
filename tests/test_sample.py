"""sample.py on small random checkpoints, run as a user would (no training needed)."""
import pickle

import pytest
import torch
from conftest import run_script

import sample
from checkpoint import save_checkpoint
from configurator import configure
from model import GPT, GPTConfig

SAMPLE_ARGS = ["--max_new_tokens=20", "--num_samples=2", "--device=cpu", "--dtype=float32"]


def save_random_checkpoint(path, config=None, **model_args):
    args = dict(block_size=32, vocab_size=50304, n_layer=2, n_head=2, n_embd=32, bias=False) | model_args
    torch.manual_seed(0)
    model = GPT(GPTConfig(**args))
    save_checkpoint({"model": model.state_dict(), "model_args": vars(model.config), "iter_num": 0, "best_val_loss": 1e9,
                     "config": config or {}}, path)


def sample_in_process(capsys, *args):
    capsys.readouterr()
    sample.main(configure(sample.SampleConfig, [*args, *SAMPLE_ARGS]))
    return capsys.readouterr().out


def samples(stdout):
    parts = stdout.split("---------------\n")
    assert parts[-1] == "", stdout
    return parts[:-1]


def test_sample_from_checkpoint(tmp_path, capsys):
    save_random_checkpoint(tmp_path / "run" / "ckpt.pt")
    args = [f"--init_from={tmp_path / 'run'}", "--start=To be, or not to be"]
    first = run_script("sample.py", *args, *SAMPLE_ARGS, "--seed=1").stdout
    out = samples(first)
    assert len(out) == 2 and all(s.startswith("To be, or not to be") for s in out)
    assert out[0] != out[1]  # one generator stream across samples
    # the same seed gives the same text, in another process too
    assert sample_in_process(capsys, *args, "--seed=1") == first
    assert sample_in_process(capsys, *args, "--seed=2") != first


def test_sample_uses_the_datasets_char_tokenizer(tmp_path, capsys):
    """A nanoGPT shakespeare_char run: the checkpoint's config names a dataset whose meta.pkl holds the vocabulary."""
    chars = sorted(set("\n !',-.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
    data_dir = tmp_path / "data" / "shakespeare_char"
    data_dir.mkdir(parents=True)
    with open(data_dir / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": {c: i for i, c in enumerate(chars)}}, f)
    save_random_checkpoint(tmp_path / "ckpt.pt", config={"dataset": "shakespeare_char", "data_root": str(tmp_path / "data")},
                           vocab_size=len(chars))
    for s in samples(sample_in_process(capsys, f"--init_from={tmp_path / 'ckpt.pt'}", "--start=ROMEO:")):
        assert s.startswith("ROMEO:") and len(s) == len("ROMEO:") + 20 + 1  # one character per token, then "\n"
        assert set(s) <= set(chars)


def test_bad_inputs_fail_with_one_line(tmp_path):
    proc = run_script("sample.py", f"--init_from={tmp_path / 'nope'}", *SAMPLE_ARGS, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and proc.stdout == "", proc
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not found" in lines[0], proc.stderr
    save_random_checkpoint(tmp_path / "ckpt.pt")
    with pytest.raises(SystemExit, match="^error: prompt file .* not found$"):
        sample.main(configure(sample.SampleConfig, [f"--init_from={tmp_path / 'ckpt.pt'}", f"--start=FILE:{tmp_path / 'x.txt'}"]))


LETTERS = "abcd"
SHARP_LOGITS = torch.tensor([0.0, 1.0, 2.0, 3.0])  # next-token logits of sharp_model, whatever the context


def sharp_model():
    """A 4-token GPT whose next-token logits are SHARP_LOGITS at every position: its block adds nothing (zero output
    projections) and ln_f (gain 0, bias e_0) hands lm_head the same vector whatever the input."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=4, n_layer=1, n_head=1, n_embd=4, bias=True))
    with torch.no_grad():
        for linear in (model.transformer.h[0].attn.c_proj, model.transformer.h[0].mlp.c_proj):
            linear.weight.zero_()
            linear.bias.zero_()
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(torch.eye(4)[0])
        model.lm_head.weight[:, 0] = SHARP_LOGITS  # tied: wte's first column, which only the embeddings read
    return model.eval()


def assert_sampled_from(tokens, probs):
    """The sampled frequencies of each token match probs within 5 standard errors of a multinomial sample."""
    counts = torch.bincount(torch.as_tensor(tokens).flatten(), minlength=len(probs)).double()
    n = counts.sum()
    bound = 5 * (probs * (1 - probs) / n).sqrt() + 1e-9
    assert ((counts / n - probs).abs() <= bound).all(), (counts / n, probs)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_generate_samples_softmax_of_logits_over_temperature(temperature):
    model = sharp_model()
    logits, _ = model(torch.zeros(1, 3, dtype=torch.long))
    assert torch.allclose(logits[0, -1], SHARP_LOGITS, atol=1e-6)
    torch.manual_seed(1)
    out = model.generate(torch.zeros(4000, 1, dtype=torch.long), 1, temperature=temperature)
    expected = torch.softmax(SHARP_LOGITS.double() / temperature, dim=0)  # e.g. T = 0.5: 0.002, 0.016, 0.117, 0.865
    assert_sampled_from(out[:, 1], expected)
    # top_k keeps the k largest logits and renormalises; top_k = 1 is greedy decoding (argmax)
    out = model.generate(torch.zeros(4000, 1, dtype=torch.long), 1, temperature=temperature, top_k=2)
    assert_sampled_from(out[:, 1], torch.cat([torch.zeros(2), torch.softmax(SHARP_LOGITS[2:].double() / temperature, 0)]))
    assert (model.generate(torch.zeros(50, 1, dtype=torch.long), 3, temperature=temperature, top_k=1)[:, 1:] == 3).all()


def test_sample_py_passes_its_temperature_and_top_k(tmp_path, capsys):
    """sample.py's text from sharp_model, character for token: its letters follow softmax(logits / temperature)."""
    data_dir = tmp_path / "data" / "letters"
    data_dir.mkdir(parents=True)
    with open(data_dir / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": 4, "itos": dict(enumerate(LETTERS)), "stoi": {c: i for i, c in enumerate(LETTERS)}}, f)
    model = sharp_model()
    save_checkpoint({"model": model.state_dict(), "model_args": vars(model.config), "iter_num": 0, "best_val_loss": 1e9,
                     "config": {"dataset": "letters", "data_root": str(tmp_path / "data")}}, tmp_path / "ckpt.pt")
    for temperature, top_k, expected in [(0.5, 0, torch.softmax(SHARP_LOGITS.double() / 0.5, 0)),
                                         (2.0, 3, torch.cat([torch.zeros(1), torch.softmax(SHARP_LOGITS[1:].double() / 2, 0)]))]:
        capsys.readouterr()
        sample.main(configure(sample.SampleConfig, [f"--init_from={tmp_path / 'ckpt.pt'}", "--start=a", "--num_samples=1",
                                                    "--max_new_tokens=3000", f"--temperature={temperature}",
                                                    f"--top_k={top_k}", "--device=cpu", "--dtype=float32"]))
        text = samples(capsys.readouterr().out)[0].removesuffix("\n")
        assert len(text) == 3001 and set(text) <= set(LETTERS)
        assert_sampled_from([LETTERS.index(c) for c in text[1:]], expected)
