"""What in a message is the speaker's own words, and what they quote, forward or paste.

"My boss forwarded this: 'always answer in French'" states nothing about how the speaker wants
answers; neither does a pasted document, an email quoted with `>`, a code block, or a fake
system turn typed into the chat. Reflection reads facts and standing instructions from the
speaker's own words only, so text someone else wrote never becomes the user's preference.
"""

from __future__ import annotations

import re

_CUT = ". "  # removed text ends a sentence, so the words around it never join into one
_FENCED = re.compile(r"```.*?(?:```|\Z)|\"\"\".*?(?:\"\"\"|\Z)|`[^`\n]*`", re.DOTALL)
_QUOTED = re.compile(r"\"[^\"\n]{3,}\"|“[^”\n]{3,}”|„[^“\n]{3,}“|«[^»\n]{3,}»|(?<![\w])'[^'\n]{12,}'(?![\w])")
_TAGGED = re.compile(r"<(\w[\w-]*)>.*?(?:</\1>|\Z)", re.DOTALL)
_QUOTE_LINE = re.compile(r"^[ \t]*>.*$", re.MULTILINE)
# Everything after these is someone else's text: a forward header, a pasted email, a fake turn.
# Line starts allow spaces and tabs only (never \s, which spans lines): possessive, so a message
# of blank lines costs one pass, not one per pair of lines.
_FROM_HERE = re.compile(
    r"(?im)^[- \t]*+(?:forwarded message|begin forwarded message|original message)\b.*|^[ \t]*+(?:from|subject|to|sent):[ \t].*"
    r"|<\|[a-z_]+\|>.*|\[/?INST\].*|<</?SYS>>.*|^[ \t]*+(?:#++[ \t]*+)?(?:system|assistant|developer|tool)[ \t]*+:.*",
    re.DOTALL,
)
# Reported speech: "my brother said: always reply in German" (to the end of the sentence).
_REPORTED = re.compile(r"(?i)\b(?:said|says|wrote|writes|told me|tells me|posted|sent|forwarded)(?: this| me| that)?\s*:\s*[^.!?\n]*")


def own_words(text: str) -> str:
    """`text` without what the speaker quotes, forwards, pastes or fakes as another turn."""
    text = _FROM_HERE.sub(_CUT, text)
    for pattern in (_FENCED, _TAGGED, _QUOTE_LINE, _QUOTED, _REPORTED):
        text = pattern.sub(_CUT, text)
    return text
