"""nanoGPT-style configuration: module-level defaults, then config files, then --key=value overrides.

    python train.py config/train_shakespeare.py --batch_size=32 --compile=False

A config file is plain Python whose assignments override the defaults. Every key must already exist and keep
its type (ints are accepted where floats are expected; a None default accepts anything), so a typo stops the run
with a one-line error instead of silently training with the default. A bare comma list on the command line
(--inherit_layers=0,2,4,6) is a Python list, as in a config file. --help (or -h) prints the script's docstring
and every key with its default and the comment on the line that sets it.
"""
import ast
import difflib
import io
import os
import sys
import tokenize
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


def default_comments(path):
    """{key: comment} for the module-level default assignments of a script: `key = value  # comment` lines and the
    `key=value,  # comment` / `'key': value,  # comment` entries of a module-level dict(...) or {...}. A key set without
    a comment maps to ''."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    keys = []  # (key, line)
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign):
            continue
        keys += [(t.id, node.lineno) for t in node.targets if isinstance(t, ast.Name)]
        value = node.value
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "dict":
            keys += [(kw.arg, kw.value.end_lineno) for kw in value.keywords if kw.arg]
        elif isinstance(value, ast.Dict):
            keys += [(k.value, v.end_lineno) for k, v in zip(value.keys, value.values) if isinstance(k, ast.Constant)]
    found = {}
    for key, line in keys:
        found.setdefault(key, comments.get(line, ""))
    return found


def print_help(defaults):
    """Print the running script's docstring and every config key with its default and comment, then exit 0.
    Comments come from the script's own source, else from the project module whose DEFAULTS it extends
    (grow.py takes train.py's keys)."""
    main = sys.modules["__main__"]
    comments = {}
    here = os.path.dirname(os.path.abspath(__file__))
    for module in list(sys.modules.values()):
        module_defaults = getattr(module, "DEFAULTS", None)
        path = getattr(module, "__file__", None) or ""
        if (module is not main and isinstance(module_defaults, dict) and set(module_defaults) <= set(defaults)
                and os.path.dirname(os.path.abspath(path)) == here):
            comments.update(default_comments(path))
    if getattr(main, "__file__", None):
        comments.update(default_comments(main.__file__))
    print((main.__doc__ or "").strip("\n"))
    print("\nconfig keys and their defaults; set them in a config file (plain Python assignments) or as --key=value:")
    items = [(f"--{key}={value!r}", comments.get(key, "")) for key, value in defaults.items()]
    width = min(40, max(len(item) for item, _ in items))
    for item, comment in items:
        print(f"  {item:<{width}}  {comment}".rstrip() if comment else f"  {item}")
    sys.exit(0)


def configure(defaults, argv):
    """Return a copy of `defaults` updated by the config files and --key=value items in argv."""
    if "--help" in argv or "-h" in argv:
        print_help(defaults)
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
