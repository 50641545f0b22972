"""nanoGPT-style configuration: module-level defaults, then config files, then --key=value overrides.

    python train.py config/train_shakespeare.py --batch_size=32 --compile=False

A config file is plain Python whose assignments override the defaults. Every key must already exist and keep
its type (ints are accepted where floats are expected; a None default accepts anything), so a typo stops the run
with a one-line error instead of silently training with the default. A bare comma list on the command line
(--inherit_layers=0,2,4,6) is a Python list, as in a config file.
"""
import difflib
import os
from ast import literal_eval

from common import fail


def _closest(key, keys):
    match = difflib.get_close_matches(key, keys, n=1, cutoff=0.0)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _check(key, value, defaults, where):
    if key not in defaults:
        fail(f"unknown config key {key!r} in {where}{_closest(key, list(defaults))}")
    default = defaults[key]
    if default is None or value is None:
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not type(default):
        fail(f"config key {key!r} in {where} must be {type(default).__name__}, got {type(value).__name__} {value!r}")
    return value


def configure(defaults, argv):
    """Return a copy of `defaults` updated by the config files and --key=value items in argv."""
    config = dict(defaults)
    for arg in argv:
        if not arg.startswith("--"):
            if not os.path.isfile(arg):
                fail(f"config file {arg!r} not found; pass a path such as config/train_shakespeare.py or --key=value")
            scope = {}
            try:
                exec(open(arg).read(), scope)
            except Exception as e:
                fail(f"config file {arg!r} could not be run: {type(e).__name__}: {e}")
            for key, value in scope.items():
                if key.startswith("_") or callable(value) or type(value).__name__ == "module":
                    continue
                config[key] = _check(key, value, defaults, arg)
        else:
            if "=" not in arg:
                fail(f"argument {arg!r} must look like --key=value")
            key, raw = arg[2:].split("=", 1)
            try:
                value = literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw  # a bare string such as --dataset=shakespeare
            if isinstance(value, tuple):
                value = list(value)  # --inherit_layers=0,2,4,6 means the list a config file would write [0, 2, 4, 6]
            if isinstance(defaults.get(key), str) and not isinstance(value, str):
                value = raw  # --out_dir=123 means the string '123'
            config[key] = _check(key, value, defaults, f"--{key}")
    return config
