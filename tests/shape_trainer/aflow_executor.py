"""Executor of the user's shape: async execute_workflow -> (answer, cost, metadata)."""

import asyncio
import json


class AFlowExecutor:
    """Runs a 'workflow' (here: a JSON spec of what should happen)."""

    async def execute_workflow(self, workflow_code, problem, problem_type="math", **kwargs):
        spec = json.loads(workflow_code)
        await asyncio.sleep(0.001)
        if spec["kind"] == "exec_raise":
            raise RuntimeError("workflow crashed")
        ok = spec["kind"] != "exec_fail"
        return spec["answer"], spec["cost"], {"success": ok, "execution_time": 0.05}
