"""nanoGPT-style configuration, typed: a script declares its settings once, as a dataclass whose fields carry a
type, a default and a comment; config files and --key=value overrides then set them.

    python train.py config/train_shakespeare.py --batch_size=32 --compile=False

A config file is plain Python whose assignments override the defaults (nanoGPT's config files run unchanged).
Every key must be a field and its value of the field's type: ints are accepted where floats are expected, None only
where the type says `| None`, so a typo or a wrong type stops the run with a one-line error instead of silently
training with something else. On the command line a value is read as a Python literal where that gives the field's
type (--compile=False, --learning_rate=1e-3, --inherit_layers=0,2,4,6 as the list a config file would write,
--rope_scaling="{'rope_type': 'llama3', ...}" as a dict), as true/false for a bool, and as the bare string otherwise
(--dataset=shakespeare, --out_dir=123).
--help (or -h) prints the script's docstring and every field with its default and the comment on its line.
"""
import ast
import dataclasses
import difflib
import inspect
import io
import sys
import textwrap
import tokenize
import types
import typing
from ast import literal_eval

from common import fail


def field_types(cls):
    """{field name: tuple of the accepted types} of a settings dataclass (list[int] -> list; NoneType for None)."""
    hints = typing.get_type_hints(cls)
    accepted = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
        accepted[field.name] = tuple(typing.get_origin(t) or t for t in options)
    return accepted


def type_name(accepted):
    return " or ".join("None" if t is type(None) else t.__name__ for t in accepted)


def accepts(value, accepted):
    """The value as the field stores it (int -> float where a float is wanted), or raise TypeError."""
    for t in accepted:
        if t is type(None) and value is None:
            return None
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is str and isinstance(value, str):
            return value
        if t is list and isinstance(value, (list, tuple)):
            return list(value)
        if t is dict and isinstance(value, dict):
            return dict(value)
    raise TypeError


def from_command_line(raw, accepted):
    """--key=raw as the field's type: a Python literal, true/false for a bool, else the bare string."""
    if bool in accepted and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return accepts(literal_eval(raw), accepted)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if str in accepted:
            return raw
        raise TypeError


def closest(key, keys):
    match = difflib.get_close_matches(key, keys, n=1, cutoff=0.0)
    return f" (did you mean {match[0]!r}?)" if match else ""


def setting(key, value, accepted, where, from_text=False):
    """key's value as its field stores it (value is --key=value's text when from_text), or a one-line error."""
    if key not in accepted:
        fail(f"unknown config key {key!r} in {where}{closest(key, list(accepted))}")
    try:
        return from_command_line(value, accepted[key]) if from_text else accepts(value, accepted[key])
    except TypeError:
        got = repr(value) if from_text else f"{type(value).__name__} {value!r}"
        fail(f"config key {key!r} in {where} must be {type_name(accepted[key])}, got {got}")


def configure(cls, argv):
    """An instance of the settings dataclass cls from its defaults, then the config files and --key=value items in
    argv, in order."""
    if "--help" in argv or "-h" in argv:
        print_help(cls)
    accepted = field_types(cls)
    values = {}
    for arg in argv:
        if arg.startswith("--"):
            if "=" not in arg:
                fail(f"argument {arg!r} must look like --key=value")
            key, raw = arg[2:].split("=", 1)
            values[key] = setting(key, raw, accepted, f"--{key}", from_text=True)
            continue
        try:
            with open(arg) as f:
                source = f.read()
        except OSError:
            fail(f"config file {arg!r} not found; pass a path such as config/train_shakespeare.py or --key=value")
        scope = {}
        try:
            exec(source, scope)
        except Exception as e:
            fail(f"config file {arg!r} could not be run: {type(e).__name__}: {e}")
        for key, value in scope.items():
            if not key.startswith("_") and not callable(value) and not isinstance(value, types.ModuleType):
                values[key] = setting(key, value, accepted, arg)
    return cls(**values)


def field_comments(cls):
    """{field: the comment on the line that declares it} over cls and the dataclasses it extends ('' for none)."""
    comments = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        source = textwrap.dedent(inspect.getsource(klass))
        line_comments = {tok.start[0]: tok.string.lstrip("#").strip()
                         for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
        for node in ast.parse(source).body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                comments[node.target.id] = line_comments.get(node.lineno, "")
    return comments


def print_help(cls):
    """Print the running script's docstring and every setting with its default and comment, then exit 0."""
    print((sys.modules["__main__"].__doc__ or "").strip("\n"))
    print("\nconfig keys and their defaults; set them in a config file (plain Python assignments) or as --key=value:")
    comments = field_comments(cls)
    items = [(f"--{f.name}={f.default!r}", comments.get(f.name, "")) for f in dataclasses.fields(cls)]
    width = min(40, max(len(item) for item, _ in items))
    for item, comment in items:
        print(f"  {item:<{width}}  {comment}".rstrip() if comment else f"  {item}")
    sys.exit(0)
