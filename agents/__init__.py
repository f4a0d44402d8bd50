"""personagraph.agents: LLM-facing deciders (reflector, planner, backends). Not built yet: see the issues."""
