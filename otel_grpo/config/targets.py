"""Can a target's module be found? Asked without importing (so without running) the user's code.

A configured target ``module:Class.method`` whose module name has a typo is never
patched, and its role's figures silently stay at zero. :func:`module_findable` answers
whether a module is imported already or could be imported, by asking the import system's
finders for its spec, parent packages included, without executing any module (a parent
package that is not imported yet is located, not imported). :func:`unfindable_targets`
applies it to the ``instrumentation.targets`` section; ``otel-grpo check-config`` lists
the result as a note and ``otel-grpo run`` warns about it at the first training step.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from otel_grpo.config.schema import parse_target

__all__ = ["module_findable", "target_module", "unfindable_targets"]

_NOT_FOUND = object()


def target_module(target: str) -> str:
    """The module part of a ``module:Class.method`` target."""
    return parse_target(target)[0]


def _finders() -> list[Any]:
    # wrapt's post-import-hook finder answers by importing the module's parents itself
    # (importlib.util.find_spec); the finders it delegates to are asked directly instead.
    return [finder for finder in sys.meta_path if not type(finder).__module__.startswith("wrapt")]


def _spec_search_path(name: str, extra_paths: Sequence[str]) -> Any:
    """Where the submodules of module ``name`` are looked for: its ``__path__`` (None for a
    plain module), or ``_NOT_FOUND`` when ``name`` cannot be found."""
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__path__", None)
    parent, _, _ = name.rpartition(".")
    path: Any = None
    if parent:
        path = _spec_search_path(parent, extra_paths)
        if path is _NOT_FOUND or path is None:  # no parent, or a parent that is not a package
            return _NOT_FOUND
        path = list(path)
    for finder in _finders():
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(name, path)
        except Exception:  # noqa: BLE001 - a finder that cannot answer: ask the next one
            continue
        if spec is not None:
            return spec.submodule_search_locations
    if not parent and extra_paths:
        spec = importlib.machinery.PathFinder.find_spec(name, list(extra_paths))
        if spec is not None:
            return spec.submodule_search_locations
    return _NOT_FOUND


def module_findable(name: str, extra_paths: Iterable[str] = ()) -> bool:
    """True when module ``name`` is imported or importable from ``sys.path`` (and ``extra_paths``).

    No module is executed: finders are asked for specs only. Never raises.
    """
    try:
        return _spec_search_path(name, [os.fspath(p) for p in extra_paths]) is not _NOT_FOUND
    except Exception:  # noqa: BLE001 - a module name the import system rejects
        return False


def unfindable_targets(targets: Mapping[str, str], extra_paths: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(role, target)`` of every target whose module cannot be found (see :func:`module_findable`)."""
    paths = list(extra_paths)
    return [(role, target) for role, target in targets.items() if not module_findable(target_module(target), paths)]
