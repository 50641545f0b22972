"""Typed settings: every field's declared type decides what a config file or --key=value may set, None only where
the type says so, one-line errors otherwise; nanoGPT's config files still run."""
import dataclasses
import glob

import pytest

import grow
import train
from configurator import configure, field_comments
from conftest import REPO, run_script

# nanoGPT's config/train_shakespeare_char.py, as its repository ships it (imports and all)
NANOGPT_CONFIG = """
# train a miniature character-level shakespeare model
import time
out_dir = 'out-shakespeare-char'
eval_interval = 250 # keep frequent because we'll overfit
eval_iters = 200
log_interval = 10 # don't print too too often
always_save_checkpoint = False
wandb_log = False # override via command line if you like
wandb_project = 'shakespeare-char'
wandb_run_name = 'mini-gpt' + str(time.time())[:3]
dataset = 'shakespeare_char'
gradient_accumulation_steps = 1
batch_size = 64
block_size = 256 # context of up to 256 previous characters
n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2
learning_rate = 1e-3 # with baby networks can afford to go a bit higher
max_iters = 5000
lr_decay_iters = 5000 # make equal to max_iters usually
min_lr = 1e-4 # learning_rate / 10 usually
beta2 = 0.99 # make a bit bigger because number of tokens per iter is small
warmup_iters = 100 # not super necessary potentially
"""


@pytest.mark.parametrize("raw, value", [("false", False), ("False", False), ("TRUE", True), ("True", True), ("None", None)])
def test_bool_or_none_from_the_command_line(raw, value):
    assert configure(train.TrainConfig, [f"--compile={raw}"]).compile is value


@pytest.mark.parametrize("arg, message", [
    ("--compile=maybe", "config key 'compile' in --compile must be bool or None, got 'maybe'"),
    ("--compile=1", "must be bool or None"),
    ("--vocab_size=abc", "config key 'vocab_size' in --vocab_size must be int or None, got 'abc'"),
    ("--vocab_size=1.5", "must be int or None"),
    ("--max_iters=None", "must be int, got 'None'"),
    ("--learning_rate=fast", "must be float"),
    ("--eval_windows=[1]", "must be int or None"),
    ("--n_layers=2", "unknown config key 'n_layers' in --n_layers (did you mean 'n_layer'?)"),
])
def test_bad_values_are_one_line_errors(arg, message):
    with pytest.raises(SystemExit) as e:
        configure(train.TrainConfig, [arg])
    assert str(e.value).startswith("error: ") and "\n" not in str(e.value) and message in str(e.value)


def test_values_take_their_fields_type(tmp_path):
    cfg = configure(train.TrainConfig, ["--learning_rate=1", "--out_dir=123", "--dataset=shakespeare",
                                        "--inherit_layers=0,2,4", "--eval_windows=None", "--dist_timeout=5"])
    assert (cfg.learning_rate, type(cfg.learning_rate)) == (1.0, float)
    assert cfg.out_dir == "123" and cfg.dataset == "shakespeare" and cfg.inherit_layers == [0, 2, 4]
    assert cfg.eval_windows is None and cfg.dist_timeout == 5.0
    assert configure(train.TrainConfig, ["--inherit_layers=0-3,0-3"]).inherit_layers == "0-3,0-3"
    assert configure(train.TrainConfig, ["--inherit_layers=6"]).inherit_layers == 6
    bad = tmp_path / "bad.py"
    bad.write_text("compile = 'false'\n")  # a string in a file is a string: refused, not truthy
    with pytest.raises(SystemExit, match="config key 'compile' in .*bad.py must be bool or None, got str 'false'"):
        configure(train.TrainConfig, [str(bad)])


def test_nanogpt_config_and_every_config_file_load(tmp_path):
    nano = tmp_path / "train_shakespeare_char.py"
    nano.write_text(NANOGPT_CONFIG)
    cfg = configure(train.TrainConfig, [str(nano)])
    assert (cfg.n_layer, cfg.dropout, cfg.beta2, cfg.wandb_run_name[:7]) == (6, 0.2, 0.99, "mini-gp")
    for path in sorted(glob.glob(str(REPO / "config" / "*.py"))):
        configure(grow.GrowConfig if "grow" in path else train.TrainConfig, [path])


def test_model_fields_come_from_gptconfig():
    from model import GPTConfig
    model_fields = {f.name for f in dataclasses.fields(GPTConfig)}
    assert model_fields <= {f.name for f in dataclasses.fields(train.TrainConfig)}
    assert field_comments(train.TrainConfig)["gelu_approximate"].startswith("GPT-2's tanh GELU")  # GPTConfig's comment


def test_train_py_bad_setting_exits_1_and_writes_nothing(tmp_path):
    proc = run_script("train.py", "--compile=maybe", f"--out_dir={tmp_path / 'run'}", check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: config key 'compile' in --compile must be bool or None, got 'maybe'"]
    assert not (tmp_path / "run").exists()
