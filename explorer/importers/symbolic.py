"""torch's symbolic sizes (sympy, with torch's own functions) as explorer expressions.

torch.export writes a dynamic size as a sympy expression over its symbols (``s77``) with functions
of its own (``FloorDiv``, ``CeilToInt``...). Only the forms listed here are translated; anything
else is refused, so that no size is guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from explorer.errors import ExplorerError

Printer = Callable[[Any, Mapping[str, str]], str]


def expression(expr: Any, names: Mapping[str, str]) -> int | str:
    """An int when the size is a number, else the explorer expression text."""
    if getattr(expr, "is_Integer", False):
        return int(expr)
    return _text(expr, names)


def _text(e: Any, names: Mapping[str, str]) -> str:
    if getattr(e, "is_Integer", False):
        return str(int(e))
    if getattr(e, "is_Symbol", False):
        if str(e) not in names:
            raise ExplorerError(f"import: the size {e} is not the batch or the resolution of an input")
        return names[str(e)]
    printer = PRINTERS.get(type(e).__name__)
    if printer is None:
        raise ExplorerError(f"import: cannot write the symbolic size {e} ({type(e).__name__}) as an expression")
    return printer(e, names)


def _join(sep: str) -> Printer:
    def printer(e: Any, names: Mapping[str, str]) -> str:
        return "(" + sep.join(_text(a, names) for a in e.args) + ")"

    return printer


def _call(fn: str) -> Printer:
    def printer(e: Any, names: Mapping[str, str]) -> str:
        return f"{fn}(" + ", ".join(_text(a, names) for a in e.args) + ")"

    return printer


def _binary(op: str) -> Printer:
    def printer(e: Any, names: Mapping[str, str]) -> str:
        a, b = e.args
        return f"({_text(a, names)} {op} {_text(b, names)})"

    return printer


def _rational(e: Any, names: Mapping[str, str]) -> str:
    return f"({int(e.p)} / {int(e.q)})"


def _pow(e: Any, names: Mapping[str, str]) -> str:
    base, exp = e.args
    if not getattr(exp, "is_Integer", False) or int(exp) < 0:
        raise ExplorerError(f"import: cannot write the symbolic size {e} as an expression")
    return f"({_text(base, names)})**{int(exp)}"


PRINTERS: dict[str, Printer] = {
    "Add": _join(" + "),
    "Mul": _join(" * "),
    "Pow": _pow,
    "Rational": _rational,
    "Half": _rational,
    "FloorDiv": _binary("//"),
    "CleanDiv": _binary("//"),
    "PythonMod": _binary("%"),
    "Mod": _binary("%"),
    "Max": _call("max"),
    "Min": _call("min"),
    "CeilToInt": _call("ceil"),
    "FloorToInt": _call("floor"),
    "ceiling": _call("ceil"),
    "floor": _call("floor"),
}
