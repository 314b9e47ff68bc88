"""Instrumentors: the trainer's roles (step, validation, executor, reward, judge) and judge HTTP."""
