"""Reading a config file that may be hostile: bounded in size, aliases and depth.

:func:`read_config_file` refuses anything but a regular file of at most
:data:`MAX_CONFIG_BYTES` bytes (a FIFO or device is never opened), and
:func:`parse_config_yaml` refuses duplicate keys, alias bombs, recursive aliases and deep
nesting. Every refusal is a one-line :class:`ConfigError` naming the file; no message
quotes the file's text (it could hold a secret).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

import yaml

from otel_grpo.config.errors import ConfigError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_YAML_ALIASES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "parse_config_yaml",
    "read_config_file",
]

MAX_CONFIG_BYTES: Final = 1024 * 1024
"""Largest config file read (1 MiB; a real one is a few KB). Larger files are refused unread."""

MAX_YAML_ALIASES: Final = 32
"""Most YAML aliases (``*name``) a config file may use."""

MAX_YAML_NODES: Final = 10_000
"""Most values a config document may hold once its aliases are expanded."""

MAX_YAML_DEPTH: Final = 64
"""Deepest nesting of mappings and lists in a config file."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader for untrusted config text.

    * duplicate keys in a mapping are errors (PyYAML would keep the last);
    * at most :data:`MAX_YAML_ALIASES` aliases, and the document expanded through its
      aliases has at most :data:`MAX_YAML_NODES` nodes (no "billion laughs");
    * an alias inside the node it refers to (``a: &a [*a]``) is an error, not a
      recursive structure;
    * nesting deeper than :data:`MAX_YAML_DEPTH` is an error, not a ``RecursionError``.

    Every refusal is a ``ComposerError`` with the position of the offending node.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._alias_count = 0
        self._depth = 0
        self._open_anchors: list[str] = []
        self._expanded_size: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"recursive alias *{event.anchor} (it refers to a node that contains it)",
                    event.start_mark,
                )
            self._alias_count += 1
            if self._alias_count > MAX_YAML_ALIASES:
                raise yaml.composer.ComposerError(
                    None, None, f"too many aliases (more than {MAX_YAML_ALIASES}; a config needs few)", event.start_mark
                )
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", event.start_mark
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.append(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.pop()
        self._check_expansion(node)
        return node

    def _check_expansion(self, node: yaml.Node) -> None:
        """Record the size of ``node`` with every alias expanded; refuse it when too large."""
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._expanded_size.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(
                self._expanded_size.get(id(key), 1) + self._expanded_size.get(id(value), 1) for key, value in node.value
            )
        if size > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"aliases expand to more than {MAX_YAML_NODES} values (an alias bomb?)", node.start_mark
            )
        self._expanded_size[id(node)] = size


def _construct_unique_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[object, object]:
    seen: set[object] = set()
    for key_node, _value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key; the base constructor reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {str(key)!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _load_yaml(text: str) -> object:
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_config_yaml(text: str, label: str) -> dict[str, object]:
    """Parse config ``text`` with the bounded loader; an empty document is ``{}``.

    Top-level keys are returned as strings (as the schema names them); nested values are
    as YAML gives them.

    Raises:
        ConfigError: naming ``label``, for invalid YAML (with its line and column but
            never a snippet of the text), a refused document, or a top level that is not
            a mapping.
    """
    try:
        data = _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        # Problem + position only: PyYAML's source snippet could echo a secret.
        reason = exc.problem or exc.context or "invalid YAML"
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(label, f"invalid YAML: {reason}{where}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(label, f"invalid YAML: {type(exc).__name__}") from None
    except RecursionError:
        raise ConfigError(label, "invalid YAML: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - e.g. an integer with 5000 digits (ValueError)
        # The message is not echoed: it may quote the offending (possibly secret) value.
        raise ConfigError(label, f"invalid YAML: a value cannot be read ({type(exc).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(label, f"expected a mapping at the top level (got {type(data).__name__})")
    return {str(key): value for key, value in data.items()}


_FILE_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _check_file_stat(mode_and_size: os.stat_result, label: str) -> None:
    """Refuse anything but a regular file of at most :data:`MAX_CONFIG_BYTES` bytes."""
    mode = mode_and_size.st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        raise ConfigError(label, f"cannot read file: it is {kind}, not a regular file")
    if mode_and_size.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(label, _too_large(mode_and_size.st_size))


def _too_large(size: int | None) -> str:
    got = f"{size} bytes" if size is not None else f"more than {MAX_CONFIG_BYTES} bytes"
    return f"file too large ({got}; a config file may have at most {MAX_CONFIG_BYTES} bytes)"


def _read_bounded(path: Path, label: str) -> bytes:
    """The bytes of ``path``, never blocking on a FIFO nor reading more than the bound.

    ``path`` is stat'ed first (a FIFO or device is never opened), then opened without
    blocking and checked again on the open descriptor, in case it was swapped between.
    """
    try:
        _check_file_stat(os.stat(path), label)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ConfigError(label, "file not found") from None
    except OSError as exc:
        raise ConfigError(label, f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    except ConfigError:
        raise
    except ValueError:  # os.stat refuses a path with a NUL byte
        raise ConfigError(label, "cannot read file: the path contains a NUL byte") from None
    try:
        _check_file_stat(os.fstat(fd), label)
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise ConfigError(label, f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    if total > MAX_CONFIG_BYTES:  # the file grew after it was stat'ed
        raise ConfigError(label, _too_large(None))
    return b"".join(chunks)


def read_config_file(path: Path, label: str) -> dict[str, object]:
    """Read and parse the config file at ``path`` (UTF-8, bounded); errors name ``label``."""
    data = _read_bounded(path, label)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(label, "cannot read file: not valid UTF-8") from None
    return parse_config_yaml(text, label)
