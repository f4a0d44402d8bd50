"""personagraph.graphs: LangGraph state machines (reflection, respond, spec). Not built yet: see the issues."""
