"""AFlow's BaseBenchmark (trimmed): what a generated workflow uses to shape its final answer."""

import re


class BaseBenchmark:
    """Answer post-processing per problem type, as AFlow's benchmarks do it."""

    _BOXED = re.compile(r"\\boxed\{([^{}]*)\}")

    @classmethod
    def extract_answer(cls, text, problem_type="math"):
        """The final answer of a workflow's output: boxed value for math, stripped text otherwise."""
        if text is None:
            return None
        text = str(text).strip()
        if problem_type == "math":
            boxed = cls._BOXED.findall(text)
            if boxed:
                return boxed[-1].strip()
            if "####" in text:
                return text.split("####")[-1].strip()
        if problem_type == "code":
            fenced = re.findall(r"```(?:python)?\n(.*?)```", text, flags=re.S)
            if fenced:
                return fenced[-1]
        return text
