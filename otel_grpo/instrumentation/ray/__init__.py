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

from typing import Any

import wrapt

from otel_grpo.instrumentation.install import register_extension

_watching = False


def _on_ray_import(module: object) -> None:
    from otel_grpo.instrumentation.pairing import set_key_hash, stable_key_hash
    from otel_grpo.instrumentation.ray.hooks import install

    set_key_hash(stable_key_hash)  # pairs executions and rewards across processes
    install(module)


def watch_ray(_telemetry: Any = None) -> None:
    """Track the trainer's Ray calls from the moment ``ray`` is (or was) imported (idempotent).

    An extension of :func:`otel_grpo.instrumentation.install.install`: every install watches.
    Worker processes wrap the methods the driver wrapped (``patching.patched_methods``).
    """
    global _watching
    if _watching:
        return
    _watching = True
    wrapt.register_post_import_hook(_on_ray_import, "ray")


register_extension(watch_ray)

__all__ = ["watch_ray"]
