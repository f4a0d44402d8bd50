"""Declarative graphs: YAML/JSON specs compiled to LangGraph StateGraphs."""
