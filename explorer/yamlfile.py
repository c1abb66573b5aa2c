"""YAML loading with line numbers, for errors that point at the offending line.

``yaml.safe_load`` builds the data; ``yaml.compose`` (the node tree, no object construction)
gives the line of every mapping key and sequence item. Lines are only needed to report an error,
so the composition runs on first use (with libyaml's parser when PyYAML has it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from explorer.errors import ExplorerError, did_you_mean

if TYPE_CHECKING:
    from pydantic import ValidationError

Key = tuple[Any, ...]
MAX_ENTRIES = 100_000


class Lines(Mapping[Key, int]):
    """Key path (``("layers", 3, "out")``) -> 1-based line, composed on first use."""

    def __init__(self, text: str, path: str, kind: type[ExplorerError]) -> None:
        self._text, self._path, self._kind = text, path, kind
        self._map: dict[Key, int] | None = None

    def _lines(self) -> dict[Key, int]:
        if self._map is None:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            node = yaml.compose(self._text, Loader=loader)
            lines: dict[Key, int] = {}
            if node is not None:
                lines[()] = node.start_mark.line + 1
                try:
                    _index(node, (), lines)
                except ExplorerError as exc:
                    raise self._kind(exc.message, path=self._path) from None
            self._map = lines
        return self._map

    def __getitem__(self, key: Key) -> int:
        return self._lines()[key]

    def __iter__(self) -> Iterator[Key]:
        return iter(self._lines())

    def __len__(self) -> int:
        return len(self._lines())


@dataclass
class YamlDoc:
    """Parsed data plus the line of every key path."""

    path: str
    data: Any
    lines: Mapping[Key, int]

    def line(self, *key: Any) -> int | None:
        return line_of(self.lines, key) or 1


def find(name: str | Path, folder: Path, kind: type[ExplorerError], what: str) -> Path:
    """A path as given, or the bundled ``folder/NAME.yaml`` (with "did you mean" when neither exists)."""
    p = Path(name)
    if p.exists() or p.suffix in (".yaml", ".yml"):
        return p
    bundled = folder / f"{name}.yaml"
    if bundled.exists():
        return bundled
    known = [q.stem for q in folder.glob("*.yaml")]
    raise kind(f"no {what} file '{name}', and no bundled {what} of that name{did_you_mean(str(name), known)}")


def line_of(lines: Mapping[Key, int], key: tuple[Any, ...]) -> int | None:
    """Line of ``key``, or of its nearest enclosing entry that has one."""
    k = tuple(key)
    while k:
        if k in lines:
            return lines[k]
        k = k[:-1]
    return lines.get(())


def load(path: str | Path, kind: type[ExplorerError] = ExplorerError) -> YamlDoc:
    """Read and parse a YAML file; I/O and syntax problems raise ``kind`` with path:line."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise kind(f"cannot read file: {exc.strerror if isinstance(exc, OSError) else exc}", path=shown) from None
    return loads(text, shown, kind)


def loads(text: str, path: str = "<string>", kind: type[ExplorerError] = ExplorerError) -> YamlDoc:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise kind(f"YAML syntax error: {problem}", path=path, line=line) from None
    except RecursionError:
        raise kind("YAML nests too deeply", path=path) from None
    return YamlDoc(path, data, Lines(text, path, kind))


def _index(node: yaml.Node, key: Key, lines: dict[Key, int]) -> None:
    if len(lines) > MAX_ENTRIES:
        raise ExplorerError(f"file has more than {MAX_ENTRIES} entries (aliases expanding?)")
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            sub = key + (k.value,)
            lines[sub] = k.start_mark.line + 1
            _index(v, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            sub = key + (i,)
            lines[sub] = v.start_mark.line + 1
            _index(v, sub, lines)


def pydantic_error(exc: ValidationError, doc: YamlDoc, kind: type[ExplorerError], root: Any) -> ExplorerError:
    """The first pydantic error as one line: ``path:line: where: what (value seen)``."""
    errors = exc.errors()
    # A misspelled key also makes the right key "missing": report the misspelling, it is the cause.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and ("[" in x or x in {"list", "dict"})))
    where = ".".join(str(x) for x in loc) or "file"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        known = _fields_at(root, loc)
        msg = f"unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), known)}"
    elif err["type"] == "missing":
        msg = "is required but missing"
    elif "input" in err and not isinstance(err["input"], (dict, list)):
        msg = f"{msg} (got {err['input']!r})"
    if err["type"] == "extra_forbidden":
        where = ".".join(str(x) for x in loc[:-1])
    return kind(f"{where}: {msg}" if where else msg, path=doc.path, line=doc.line(*loc))


def _fields_at(root: Any, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that holds ``loc[-1]``, for "did you mean"."""
    model = root
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", {})
        if isinstance(part, str) and part in fields:
            model = _model_in(fields[part].annotation) or model
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if hasattr(annotation, "model_fields"):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None
