"""Ray scale-out: what the trainer's remote calls record lands, exact, in the driver's rows.

Nothing here imports Ray: :func:`watch_ray` registers an import hook, and the patches
are installed only if and when the trainer imports ``ray``. With Ray absent, nothing
changes. How it works and why the rows are exact: ``docs/ray.md``.

* :mod:`.hooks`: patches on Ray's classes (tag calls, track actor methods, count what
  cannot be tracked, the wait at exit);
* :mod:`.calls`: the driver's tracked calls, replayed once completed (never waited for);
* :mod:`.delivery`: which calls completed, and their records, without waiting;
* :mod:`.worker`: a tracked call inside a worker process;
* :mod:`.nested`: remote calls a tracked call makes (they carry its tag);
* :mod:`.events`: the typed records one call ships, each replaying itself;
* :mod:`.records`: the worker's capturing recorder, which writes them;
* :mod:`.replay`: those records through the driver's recorder.
"""

from __future__ import annotations

from collections.abc import Callable

import wrapt

_watching = False


def _on_ray_import(module: object) -> None:
    from otel_grpo.instrumentation import roles
    from otel_grpo.instrumentation.ray.hooks import install

    roles.set_key_hash(roles.stable_key_hash)  # pairs executions and rewards across processes
    install(module)


def watch_ray(methods: Callable[[], list[tuple[str, str, str]]] | None = None) -> None:
    """Track the trainer's Ray calls from the moment ``ray`` is (or was) imported.

    ``methods`` lists the ``(module, Class.method, role)`` that ``instrument_trainer``
    wrapped, so that worker processes wrap the same methods.
    """
    global _watching
    if methods is not None:
        from otel_grpo.instrumentation.ray.hooks import set_methods_provider

        set_methods_provider(methods)
    if _watching:
        return
    _watching = True
    wrapt.register_post_import_hook(_on_ray_import, "ray")


__all__ = ["watch_ray"]
