"""personagraph.tools: LangChain tools over memory. Not built yet: see the issues."""
