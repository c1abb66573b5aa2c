"""YAML loading with line numbers, for errors that point at the offending line.

``yaml.safe_load`` builds the data; ``yaml.compose`` (the node tree, no object construction)
gives the line of every mapping key and sequence item. Lines are only needed to report an error,
so the composition runs on first use (with libyaml's parser when PyYAML has it).

Work is bounded before anything is built: only regular files of at most :data:`MAX_BYTES` are
read, a cheap event scan refuses more than :data:`MAX_NODES` YAML nodes, nesting deeper than
:data:`MAX_DEPTH`, recursive aliases (and, for specs, more than a given number of layer entries), and integers longer than :data:`MAX_INT_DIGITS` digits
are refused with their line (Python itself refuses to read more than 4,300 digits).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from explorer.errors import ExplorerError, brief, did_you_mean

if TYPE_CHECKING:
    from pydantic import ValidationError

Key = tuple[Any, ...]
MAX_BYTES = 8 * 1024 * 1024  # largest file read
MAX_NODES = 500_000  # YAML nodes (scalars, sequences, mappings) in one file, counted before loading
MAX_INT_DIGITS = 400  # digits of one integer literal
MAX_DEPTH = 100  # nesting of collections (libyaml composes recursively in C, unbounded by Python)
MAX_ENTRIES = MAX_NODES  # keys indexed for line numbers; more can only come from aliases expanding
_LIBYAML = hasattr(yaml, "CSafeLoader")


@dataclass(frozen=True)
class Counted:
    """Sequences whose items the pre-scan counts: key paths (``"*"`` matches any key) and a limit."""

    paths: tuple[tuple[str, ...], ...]
    limit: int
    what: str  # "layer entries"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader (libyaml's parser when available) that refuses integers too long to read."""


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    digits = sum(c.isdigit() for c in str(node.value))
    if digits > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {digits} digits is too long (limit {MAX_INT_DIGITS})", node.start_mark)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class Lines(Mapping[Key, int]):
    """Key path (``("layers", 3, "out")``) -> 1-based line, composed on first use."""

    def __init__(self, text: str, path: str, kind: type[ExplorerError]) -> None:
        self._text, self._path, self._kind = text, path, kind
        self._map: dict[Key, int] | None = None

    def _lines(self) -> dict[Key, int]:
        if self._map is None:
            node = yaml.compose(self._text, Loader=_Loader)
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


def load(path: str | Path, kind: type[ExplorerError] = ExplorerError, counted: Counted | None = None) -> YamlDoc:
    """Read and parse a YAML file; I/O and syntax problems raise ``kind`` with path:line."""
    shown = str(path)
    try:
        text = _read(Path(path))
    except OSError as exc:
        raise kind(f"cannot read file: {exc.strerror or exc}", path=shown) from None
    except UnicodeDecodeError as exc:
        raise kind(f"cannot read file: {exc}", path=shown) from None
    except ValueError as exc:
        raise kind(str(exc), path=shown) from None
    return loads(text, shown, kind, counted)


def _read(path: Path) -> str:
    """The text of a regular file of at most MAX_BYTES, checked before reading (not /dev/zero)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("cannot read file: not a regular file")
        if info.st_size > MAX_BYTES:
            raise ValueError(f"file is {info.st_size:,} bytes (limit {MAX_BYTES:,})")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"file is over {MAX_BYTES:,} bytes (limit {MAX_BYTES:,})")
    return data.decode("utf-8")


def loads(text: str, path: str = "<string>", kind: type[ExplorerError] = ExplorerError,
          counted: Counted | None = None) -> YamlDoc:
    try:
        _prescan(text, counted)
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        prefix = "" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error: "
        raise kind(f"{prefix}{problem}", path=path, line=line) from None
    except _TooBig as exc:
        raise kind(exc.message, path=path, line=exc.line) from None
    except RecursionError:
        raise kind("YAML nests too deeply", path=path) from None
    except MemoryError:
        raise kind("file is too large to load", path=path) from None
    except ValueError as exc:  # a value libyaml or the constructors cannot read
        raise kind(f"cannot read YAML: {str(exc).splitlines()[0]}", path=path) from None
    return YamlDoc(path, data, Lines(text, path, kind))


class _TooBig(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def _prescan(text: str, counted: Counted | None) -> None:
    """Count nodes (and the items of ``counted`` sequences) from parser events, before building."""
    if len(text) > MAX_BYTES:
        raise _TooBig(f"text is {len(text):,} characters (limit {MAX_BYTES:,})", None)
    nodes = items = 0
    stack: list[list[Any]] = []  # per open collection: [is_mapping, key path, pending key, counted?, anchor]
    for event in yaml.parse(text, Loader=_Loader):
        if not isinstance(event, yaml.NodeEvent):
            if isinstance(event, yaml.CollectionEndEvent):
                stack.pop()
            continue
        nodes += 1
        if nodes > MAX_NODES:
            raise _TooBig(f"file has more than {MAX_NODES:,} YAML nodes (limit {MAX_NODES:,})",
                          _line(event))
        if isinstance(event, yaml.AliasEvent) and any(e[4] == event.anchor for e in stack):
            raise _TooBig(f"the alias *{event.anchor} refers to a node that contains it (recursive YAML)",
                          _line(event))
        path = _event_key(stack, event) if counted is not None else ()
        if counted is not None and stack and stack[-1][3]:
            items += 1
            if items > counted.limit:
                raise _TooBig(f"too many layers: more than {counted.limit:,} {counted.what} "
                              f"(limit {counted.limit:,})", _line(event))
        if isinstance(event, yaml.CollectionStartEvent):
            watched = (counted is not None and isinstance(event, yaml.SequenceStartEvent)
                       and _matches(path, counted.paths))
            stack.append([isinstance(event, yaml.MappingStartEvent), path, None, watched, event.anchor])
            if len(stack) > MAX_DEPTH:
                raise _TooBig(f"YAML nests deeper than {MAX_DEPTH} levels", _line(event))


def _event_key(stack: list[list[Any]], event: yaml.NodeEvent) -> tuple[str, ...]:
    """Key path of the node an event starts; mapping keys alternate with values."""
    if not stack:
        return ()
    top = stack[-1]
    if not top[0]:
        return (*top[1], "#")
    if top[2] is None:  # this node is a key
        top[2] = str(event.value) if isinstance(event, yaml.ScalarEvent) else "?"
        return (*top[1], "?key")
    key, top[2] = top[2], None
    return (*top[1], key)


def _matches(path: tuple[str, ...], patterns: tuple[tuple[str, ...], ...]) -> bool:
    return any(len(p) == len(path) and all(a in ("*", b) for a, b in zip(p, path)) for p in patterns)


def _index(node: yaml.Node, key: Key, lines: dict[Key, int], seen: set[int] | None = None) -> None:
    """Line of every key path. A node reached again through an alias is not walked again: its inner
    entries take the line of the alias (:func:`line_of` falls back to the nearest enclosing key),
    so aliases never expand here."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if len(lines) > MAX_ENTRIES:
        raise ExplorerError(f"file has more than {MAX_ENTRIES} entries")
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            sub = key + (k.value,)
            lines[sub] = k.start_mark.line + 1
            _index(v, sub, lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            sub = key + (i,)
            lines[sub] = v.start_mark.line + 1
            _index(v, sub, lines, seen)


def pydantic_error(exc: ValidationError, doc: YamlDoc, kind: type[ExplorerError], root: Any) -> ExplorerError:
    """The first pydantic error as one line: ``path:line: where: what (value seen)``."""
    errors = exc.errors()
    # A misspelled key also makes the right key "missing": report the misspelling, it is the cause.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _data_loc(doc.data, err["loc"])
    where = ".".join(str(x) for x in loc) or "file"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        known = _fields_at(root, loc)
        msg = f"unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), known)}"
    elif err["type"] == "missing":
        msg = "is required but missing"
    elif "input" in err and not isinstance(err["input"], (dict, list)):
        msg = f"{msg} (got {brief(err['input'])})"
    if err["type"] == "extra_forbidden":
        where = ".".join(str(x) for x in loc[:-1])
    return kind(f"{where}: {msg}" if where else msg, path=doc.path, line=doc.line(*loc))


def _data_loc(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The parts of a pydantic location that are keys of the data (not union tags like ``str``);
    a last part missing from a mapping is kept (a required key)."""
    out: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif not (isinstance(node, dict) and i == len(loc) - 1 and isinstance(part, str) and part.isidentifier()):
            continue  # a union tag or validator name (``function-after[...]``), not a key
        out.append(part)
    return tuple(out)


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


def _line(event: Any) -> int:
    """The 1-based line where a YAML event starts (1 when the parser gives no position)."""
    mark = event.start_mark
    return int(mark.line) + 1 if mark is not None else 1
