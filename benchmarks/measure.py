"""Timing and summaries: every figure is min/median/max over repeats, ratios paired per repeat."""

import statistics
import time


def timed(action):
    """Seconds action() took, and what it returned."""
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def summary(samples):
    """min/median/max of a list of numbers, with the samples kept for the record."""
    values = [float(value) for value in samples]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "samples": values}


def paired_ratios(numerators, denominators):
    """Ratio per repeat: both methods ran side by side in the same repeat, so noise cancels best there."""
    return summary([a / b for a, b in zip(numerators, denominators) if b])


def scaled(stats, factor):
    """A summary with every value multiplied by factor (extrapolation)."""
    if stats is None:
        return None
    return {key: ([v * factor for v in value] if key == "samples" else value * factor) for key, value in stats.items()}
