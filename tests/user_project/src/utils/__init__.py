"""Helpers of the training code: data loading, the (fake) policy, GRPO maths."""
