"""What a request needs from personalization: recalling something about the user, writing in
the user's own voice, or neither.

Rules over the wording, because the planner runs on every request and must cost nothing; an
LLM policy can overrule them. Writing requests are checked first: "draft a reply to my
landlord" mentions "my" but asks for the user's style, not for a fact.
"""

from __future__ import annotations

import re
from typing import Literal

QueryNeed = Literal["recall", "style", "general"]

_LEAD = r"^\s*(?:(?:please|ok|okay|hey|can you|could you|would you|will you|help me|i need you to|i want you to|i'd like you to)[,\s]+)*"
_WRITE_ORDER = re.compile(  # an imperative asking for a text: style, whatever it mentions after
    _LEAD + r"(?:write|draft|compose|rewrite|rephrase|reword|paraphrase|reply|respond|pen|craft)\b"
    r"|" + _LEAD + r"(?:make|create|come up with|give me|put together|prepare)\b.*"
    r"\b(?:tweet|post|caption|email|e-mail|message|text|note|letter|toast|speech|bio|reply|invitation|card)\b",
    re.IGNORECASE,
)
_STYLE = re.compile(
    r"\b(?:in|with) my (?:own )?(?:style|voice|words|tone)\b|\bsounds? like me\b|\bas (?:if it were )?me\b",
    re.IGNORECASE,
)
# A question about what the user did or said is recall even when it names a writing verb.
_PAST = re.compile(r"\b(?:did|have|had) i\b|\bi (?:said|told|wrote|mentioned)\b", re.IGNORECASE)
# "How do I boil an egg?" is a how-to; "How do I usually take my coffee?" is a memory.
_HOW_TO = re.compile(r"^\s*how (do|can|should|would) i\b(?!.*\b(my|usually|normally|like|prefer)\b)", re.IGNORECASE)
_RECALL = re.compile(
    r"\b(what|where|when|who|which|how many|how long|how old|do|did|have|had|am|was|were|is|are)\b[^?.!]*\b(i|my|me|mine)\b"
    r"|\b(remember|remind me|recall|forgot|did i (tell|say|mention))\b"
    r"|\bmy (favou?rite|name|job|work|age|birthday|partner|wife|husband|kids?|dog|cat|plans?|hobb(y|ies)|home|address)\b"
    r"|\b(about me|know about me)\b",
    re.IGNORECASE,
)


def classify_query(query: str) -> tuple[QueryNeed, str]:
    """The need of one request and the rule that decided it."""
    if _HOW_TO.search(query):
        return "general", "asks how to do something"
    if _WRITE_ORDER.search(query):
        return "style", "asks for text written for or as the user"
    if _PAST.search(query):
        return "recall", "asks about what the user did or said"
    if _STYLE.search(query):
        return "style", "asks for text written for or as the user"
    if _RECALL.search(query):
        return "recall", "asks about the user's own facts, preferences or past"
    return "general", "asks nothing about the user"
