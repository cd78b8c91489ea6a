"""YAML text to plain data, within bounds, or one line saying why not.

A config file is read by a process that serves traffic, on every SIGHUP and
file change, so hostile or broken YAML must fail fast, small and cleanly:

- nesting deeper than `MAX_DEPTH` is refused while the document is composed,
  before PyYAML's recursive composer exhausts the Python stack;
- aliases may add at most `ALIAS_BUDGET` nodes and characters to the document
  ("billion laughs": 300 bytes of nested aliases expand to gigabytes once a
  checker, an error message or a renderer walks them);
- an alias inside the collection it names (a recursive structure) is refused;
- a key given twice in one mapping is refused (PyYAML keeps the last silently);
- a scalar PyYAML resolves but cannot build (`2001-02-30`, an integer of 5000
  digits) is a problem at its line, not a ValueError from deep in PyYAML;
- a string with a lone surrogate (`"\\udcff"`) is refused: it passes every
  check, then fails every render (UTF-8 cannot encode it).

An unquoted string holding `${` comes back as `variables.Plain`, so that
`variables.expand` can read `${RETRIES}` alone as YAML would read its value.

>>> parse_yaml("a: [1, 2]")
{'a': [1, 2]}
>>> parse_yaml("a: &a [x, x]\\nb: &b [*a, *a]\\nc: [*b, *b]")
{'a': ['x', 'x'], 'b': [['x', 'x'], ['x', 'x']], 'c': [[['x', 'x'], ['x', 'x']], [['x', 'x'], ['x', 'x']]]}
>>> parse_yaml("[" * 200 + "]" * 200)
Traceback (most recent call last):
proxy.config.parse.YAMLProblem: line 1, column 101: not valid YAML (nested deeper than 100 levels)
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.reader import ReaderError
from yaml.scanner import ScannerError

from .values import show
from .variables import Plain

MAX_DEPTH = 100  # collections inside collections, aliases followed; real configs nest under 10
ALIAS_BUDGET = 100_000  # nodes plus scalar characters that aliases may add; a `<<: *base` adds tens


class YAMLProblem(ValueError):
    """The text is not a YAML document this loader accepts; the message says where and why."""


def parse_yaml(text: str) -> Any:
    """The one document in `text`, as dicts, lists and scalars; YAMLProblem otherwise."""
    try:
        loader = _BoundedLoader(text)  # checks the characters first
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise YAMLProblem(_describe(exc)) from None
    except RecursionError:  # a bound above failed to hold: still one line, never a traceback
        raise YAMLProblem(f"not valid YAML (nested deeper than {MAX_DEPTH} levels)") from None


def _describe(exc: yaml.YAMLError) -> str:
    if isinstance(exc, ReaderError):  # a control character, say: its str() spans lines
        what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else show(exc.character)
        return f"character {exc.position + 1}: not valid YAML (unacceptable character {what})"
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())[:200]
    context = getattr(exc, "context", None)
    if context and problem.startswith("but "):  # "but found another document" needs its first half
        problem = f"{context}, {problem}"
    return f"{where}not valid YAML ({problem})"


def _text_only(node: ScalarNode) -> None:
    """Refuse a lone surrogate (`"\\udcff"`): a string holding one cannot be encoded, so every page would fail."""
    if node.value.isascii():
        return
    try:
        node.value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ComposerError(None, None, f"\\u{ord(node.value[exc.start]):04x} is half of a surrogate pair, "
                            "not a character", node.start_mark) from None


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader with the bounds of this module's docstring.

    Composition records each node's expanded size and depth (aliases
    followed), bottom-up: a node is complete before its parent, so an alias
    whose node has no record yet points into a collection still being built.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._shape: dict[Node, tuple[int, int]] = {}  # node -> (expanded size, expanded depth)
        self._aliased = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            shape = self._shape.get(node)
            if shape is None:
                raise ComposerError(None, None, f"alias *{event.anchor} is inside the collection it names",
                                    event.start_mark)
            self._aliased += shape[0]
            if self._aliased > ALIAS_BUDGET:
                raise ComposerError(None, None, f"aliases expand the document past {ALIAS_BUDGET} values "
                                    "and characters", event.start_mark)
            self._deep_enough(self._depth + shape[1], event)
            return node
        self._depth += 1
        if not isinstance(event, ScalarEvent):  # a scalar ends the nesting, it adds no level
            self._deep_enough(self._depth, event)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, ScalarNode):
            _text_only(node)
            shape = (1 + len(node.value), 0)
        else:
            children = [part for pair in node.value for part in pair] if isinstance(node, MappingNode) else node.value
            shapes = [self._shape[child] for child in children]
            shape = (1 + sum(size for size, _ in shapes), 1 + max((depth for _, depth in shapes), default=0))
        self._shape[node] = shape
        return node

    def fetch_flow_collection_start(self, TokenClass: type) -> None:
        # The scanner looks up to 1024 characters ahead for a simple key, in time quadratic
        # in the open brackets: `[[[[...` is refused here, before the composer would see it.
        if self.flow_level >= MAX_DEPTH:
            raise ScannerError(None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def _deep_enough(self, depth: int, event: Any) -> None:
        if depth > MAX_DEPTH:
            raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # datetime's "day is out of range", int()'s digit limit
            reason = str(exc).partition(";")[0][:100]  # int()'s message goes on to advise a Python call
            raise ConstructorError(None, None, f"cannot read {show(node.value, 40)} as {node.tag.rpartition(':')[2]}: "
                                   f"{reason}", node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping, refusing a key given twice: a second `legacy:` would replace the first without a word."""
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` keys may be overridden: that is what merging is for
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: PyYAML's own construction reports it
                continue
            if duplicate:
                raise ConstructorError("while constructing a mapping", node.start_mark,
                                       f"found duplicate key {show(key)}", key_node.start_mark)
        return super().construct_mapping(node, deep)


def _construct_str(loader: _BoundedLoader, node: ScalarNode) -> str:
    text = loader.construct_scalar(node)
    return Plain(text) if node.style is None and "${" in text else text


_BoundedLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)
