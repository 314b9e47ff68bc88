"""AFlow executor (trimmed from the user's): compile a generated workflow, run it, report.

Each workflow is compiled on its own; its code imports AFlow's top-level ``benchmarks``
and ``scripts`` packages from the AFlow checkout on ``sys.path``. When that import fails
the workflow fails (reward 0): the silent failure mode that a monitoring layer must
never cause.
"""

import asyncio
import time


def _format_context(context):
    """HotpotQA context is [[title, [sentences...]], ...]; SQuAD's is one paragraph."""
    if isinstance(context, str):
        return context
    parts = []
    for title, sentences in context:  # a sample with no context raises here (reward -10)
        parts.append(f"{title}: {' '.join(sentences)}")
    return "\n".join(parts)


class AFlowExecutor:
    """Runs generated workflows on the configured LLM (the judge's gpt-oss-120b server)."""

    def __init__(self, llm_config, timeout=60.0):
        self.llm_config = llm_config
        self.timeout = timeout
        self.compile_errors = []
        self.execution_errors = []

    def _compile(self, workflow_code):
        namespace = {"__name__": "aflow_generated_workflow"}
        exec(compile(workflow_code, "<generated workflow>", "exec"), namespace)
        return namespace["Workflow"]

    async def execute_workflow(self, workflow_code, problem, problem_type="math", **kwargs):
        """Returns (answer, cost, metadata); metadata["success"] says whether it ran."""
        start = time.perf_counter()
        source = kwargs.get("source")
        if problem_type == "qa":
            problem = f"Context:\n{_format_context(kwargs.get('context'))}\n\nQuestion: {problem}"
        try:
            workflow_cls = self._compile(workflow_code)
        except Exception as exc:  # noqa: BLE001 - AFlow reports and scores 0
            self.compile_errors.append(f"{type(exc).__name__}: {exc}")
            return (
                None,
                0.0,
                {
                    "success": False,
                    "error": f"compile failed: {type(exc).__name__}: {exc}",
                    "execution_time": time.perf_counter() - start,
                },
            )
        workflow = workflow_cls(name=f"{source}-workflow", llm_config=self.llm_config, dataset=source)
        try:
            answer, cost = await asyncio.wait_for(
                workflow(problem, problem_type=problem_type, entry_point=kwargs.get("entry_point")), self.timeout
            )
            metadata = {"success": answer is not None}
        except Exception as exc:  # noqa: BLE001 - a failed execution, not a crash
            self.execution_errors.append(f"{source}: {type(exc).__name__}: {exc}")
            answer, cost = None, workflow.llm.get_usage_summary()["total_cost"]
            metadata = {"success": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            await workflow.llm.close()
        metadata["execution_time"] = time.perf_counter() - start
        return answer, cost, metadata
