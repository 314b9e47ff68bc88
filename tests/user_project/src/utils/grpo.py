"""GRPO maths: group advantages weighted by accuracy (WA-GRPO), loss and KL."""

import math


def wa_grpo_advantages(rewards, group_size, correct_weight=1.5):
    """Per-sample advantages: (r - group mean) / (group std + eps), correct samples up-weighted."""
    advantages = []
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        mean = sum(group) / len(group)
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / len(group))
        for r in group:
            weight = correct_weight if r >= 0.9 else 1.0
            advantages.append(weight * (r - mean) / (std + 1e-4))
    return advantages


def policy_loss(advantages, log_probs, ref_log_probs, beta):
    """-mean(A * logp) + beta * KL, with KL the mean squared log-ratio / 2."""
    n = max(len(advantages), 1)
    pg = -sum(a * lp for a, lp in zip(advantages, log_probs, strict=True)) / n
    kl = sum((lp - ref) ** 2 for lp, ref in zip(log_probs, ref_log_probs, strict=True)) / (2 * n)
    return pg + beta * kl, kl
