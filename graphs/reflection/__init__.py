"""The reflection state machine: conversations in, episodic, semantic and graph memory out."""

from .budget import LLMBudget
from .executor import ReflectionExecutor
from .graph import ReflectionConfig, ReflectionState, build_reflection_graph
from .reconcile import Decision, ReconcileConfig
from .schema import CandidateEntity, CandidateFact

__all__ = [
    "CandidateEntity",
    "CandidateFact",
    "Decision",
    "LLMBudget",
    "ReconcileConfig",
    "ReflectionConfig",
    "ReflectionExecutor",
    "ReflectionState",
    "build_reflection_graph",
]
