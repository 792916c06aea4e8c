"""Data classification: GB/T 43697-2024 classes and the four public-data levels, with rule-based suggestions."""

from policies.classification.suggest import Suggestion, suggest_class

__all__ = ["Suggestion", "suggest_class"]
