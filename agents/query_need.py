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

_STYLE = re.compile(
    r"\b(write|draft|compose|rewrite|rephrase|reword|paraphrase|reply|respond|answer)\b.*\b(to|for|as|like|in|an?|my|this|that|the)\b"
    r"|\b(in|with) my (own )?(style|voice|words|tone)\b|\bsound(s)? like me\b|\bas (if it were )?me\b"
    r"|\b(tweet|post|caption|email|e-mail|message|text|note|letter|toast|speech|bio)\b.*\b(for|to) (me|my|him|her|them|the)\b"
    r"|^\s*(write|draft|compose)\b",
    re.IGNORECASE,
)
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
    if _STYLE.search(query):
        return "style", "asks for text written for or as the user"
    if _RECALL.search(query) and not _HOW_TO.search(query):
        return "recall", "asks about the user's own facts, preferences or past"
    return "general", "asks nothing about the user"
