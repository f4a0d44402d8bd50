"""Skip batches with nothing to remember before any extractor runs.

Most turns in a chat are "thanks!", "haha" or "how are you?". Sending those to the model costs a
call each and, with a small model, invites facts copied from the prompt's examples. The gate
removes known chit-chat phrases and words, then stopwords; a message whose remainder still
holds a word, a number or any non-Latin letter carries content. The bias is deliberate: one
leftover word is enough, because a missed fact costs more than a wasted call. Only user and
"other" speakers count: an assistant message never makes a batch memorable.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from personagraph.memory.models import Event

from .schema import GateDecision


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Whole phrases first (longest wins), then single words; each names the kind of chit-chat.
_PHRASES: dict[str, tuple[str, ...]] = {
    "greeting": (
        "good morning", "good afternoon", "good evening", "good day", "morning", "evening", "hi there",
        "hello there", "hey there", "long time no see", "happy friday", "happy monday",
    ),
    "small talk": (
        "how are you doing", "how are you", "how are u", "how r u", "how's it going", "how is it going",
        "how have you been", "how's your day", "how is your day", "how was your day", "how's everything",
        "how are things", "what's up", "whats up", "what's new", "how about you", "and you", "what about you",
        "i'm good", "i am good", "i'm fine", "i am fine", "i'm great", "i'm okay", "i'm ok", "i'm well",
        "doing well", "doing good", "doing great", "not bad", "not too bad", "pretty good", "can't complain",
        "all good", "same old", "you know", "i guess", "i think so", "i don't know", "i dunno", "hope so",
        "how about that", "is it", "are you", "i see", "oh well",
    ),
    "pleasantry": (
        "nice to meet you", "pleased to meet you", "good to meet you", "nice meeting you",
        "nice to hear from you", "good to hear from you", "nice talking to you", "nice chatting with you",
        "great talking to you", "good to see you", "nice to see you", "hope you're well", "hope you are well",
        "hope you're doing well", "hope all is well", "glad to hear", "good to hear", "happy to hear",
        "sorry to hear that", "sorry to hear", "that's great", "that's awesome", "that's amazing",
        "that's nice", "that's cool", "that's good", "that's lovely", "that's so sweet", "that's wonderful",
        "that's interesting", "that sounds great", "that sounds good", "that sounds fun", "sounds great",
        "sounds good", "sounds fun", "sounds like a plan", "sounds lovely", "sounds amazing", "good luck",
        "best of luck", "fingers crossed", "have fun", "well done", "good job", "congrats", "congratulations",
        "bless you", "oh no", "no way", "my pleasure", "you're welcome", "you are welcome", "any time",
        "anytime", "happy to help", "glad i could help", "me too", "you too", "same here", "same to you",
        "of course", "for sure", "no worries", "no problem", "not at all", "never mind", "my bad", "excuse me",
        "take your time", "i'm sorry", "i am sorry", "sorry about that", "that makes sense", "makes sense",
        "fair enough", "good point", "good question", "good idea", "great idea", "love it", "love that",
        "love this", "i love it", "i love that", "i like it", "i like that", "i agree", "so true", "too true",
        "how nice", "how cool", "how lovely", "what a",
    ),
    "thanks": (
        "thank you so much", "thank you very much", "thanks so much", "thanks a lot", "thanks a bunch",
        "thanks a million", "many thanks", "thank you", "thanks again", "much appreciated", "i appreciate it",
        "appreciate it", "that's helpful", "that's very helpful", "that helps", "very helpful", "super helpful",
        "muchas gracias", "merci beaucoup", "vielen dank", "danke schön", "grazie mille",
    ),
    "acknowledgement": (
        "got it", "got you", "gotcha", "will do", "sure thing", "all right", "alright then", "okay then",
        "ok then", "sounds about right", "that works", "works for me", "fine by me", "yes please", "no thanks",
        "no thank you", "let me think", "let me see", "i will", "i'll try", "i'll do that", "i'll check",
        "i'll think about it", "i'll let you know", "good shout",
    ),
    "farewell": (
        "good night", "goodnight", "see you later", "see you soon", "see you tomorrow", "see you", "see ya",
        "talk to you later", "talk to you soon", "talk soon", "talk later", "catch you later", "take care",
        "have a good one", "have a good day", "have a nice day", "have a great day", "have a good night",
        "have a good weekend", "have a nice weekend", "have a great weekend", "have a good evening",
        "enjoy your day", "enjoy your weekend", "enjoy", "gotta go", "got to go", "i have to go", "i must go",
        "i need to go", "bye for now", "until next time", "speak soon", "sleep well", "sweet dreams",
        "i'm off", "i'm heading off",
    ),
}
_WORDS: dict[str, frozenset[str]] = {
    "greeting": _words("hi hello hey heya hiya howdy yo greetings sup hallo hola ola bonjour salut ciao servus"),
    "thanks": _words("thanks thank thx ty tysm cheers ta appreciated grateful helpful useful gracias merci danke grazie "
        "obrigado obrigada arigato"),
    "acknowledgement": _words(
        "ok okay okey k kk alright sure yes yeah yep yup ya yah aye no nope nah right true exactly "
        "absolutely definitely certainly indeed totally agreed agree correct noted understood perfect fine "
        "cool nice great awesome amazing wonderful fantastic brilliant lovely sweet neat excellent superb "
        "fab fabulous splendid good super wow whoa woah omg oh ah aw aww awww ooh oooh hmm hm mm mmm um uh "
        "erm er well so anyway interesting fun funny cute glad happy sad sorry oops yay woohoo hooray phew "
        "damn dang gosh jeez crazy lucky impressive beautiful gorgeous adorable yikes "
        "ugh meh boo same please pls plz"
    ),
    "farewell": _words("bye goodbye byebye cya ttyl gn nite later farewell adios adiós tschüss"),
}
_STOPWORDS = _words(
    "a an the and or but if so too very really just also still even quite pretty much many more most "
    "some any all both each this that these those it its it's i i'm i've i'll i'd me my mine myself you "
    "you're you've you'll your yours u ur we we're our us they them their he she his her him is am are "
    "was were be been being do does did doing done have has had having can could would should will shall "
    "might must to of in on at for with about from by as up down out over then than there here "
    "what's how what when where why who which whom whose that's there's here's let's not don't doesn't "
    "didn't isn't aren't wasn't weren't hadn't haven't hasn't wouldn't couldn't shouldn't can't won't "
    "i'd you'd we'll they're he's she's gonna wanna gotta one thing things stuff way lot bit "
    "kind sort like get got go going know think see say said now again ever ok"
)
_LAUGHTER = re.compile(r"^(?:a?h?(?:ah|ha|eh|he|hi|ja|je){2,}h?|hah|heh|l+o+l+z?|lmf?a+o+|rofl|xd+)$")
_EMOTICON = re.compile(r"[:;=8][-'^]?[()\[\]dpo3/\\|*]|<3|\^_?\^")
_STRETCHED = re.compile(r"(\w)\1{2,}")  # "sooo" -> "soo"
_DOUBLED = re.compile(r"(\w)\1")
_PHRASE_KIND = {phrase: kind for kind, phrases in _PHRASES.items() for phrase in phrases}
_PHRASE = re.compile(  # one pass over the text; longer phrases first so "thank you so much" wins
    r"(?<![\w'])(?:" + "|".join(re.escape(p) for p in sorted(_PHRASE_KIND, key=len, reverse=True)) + r")(?![\w'])"
)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def _non_latin_letter(text: str) -> bool:
    """Letters the English lexicon cannot judge ("我对花生过敏") always count as content."""
    return any(ch.isalpha() and not unicodedata.name(ch, "").startswith("LATIN") for ch in text)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'").replace("‘", "'")
    return _STRETCHED.sub(r"\1\1", text)


def _kind(word: str) -> str | None:
    """The chit-chat kind of one word, "" for a stopword, None for a content word."""
    for form in {word, _DOUBLED.sub(r"\1", word)}:  # "coool" -> "cool", "yesss" -> "yes"
        if _LAUGHTER.match(form):
            return "laughter"
        if kind := next((k for k, words in _WORDS.items() if form in words), None):
            return kind
        if form in _STOPWORDS:
            return ""
    return None if len(word) > 1 or word.isdigit() else ""


def _content_and_chit_chat(text: str) -> tuple[list[str], set[str]]:
    """The words left once chit-chat and stopwords are removed, and the kinds of chit-chat seen."""
    if _non_latin_letter(text):
        return [text], set()
    norm = _normalise(text)
    kinds = {_PHRASE_KIND[m] for m in _PHRASE.findall(norm)}
    content: list[str] = []
    for word in _WORD.findall(_PHRASE.sub(" ", norm)):
        kind = _kind(word)
        if kind is None:
            content.append(word)
        elif kind:
            kinds.add(kind)
    if not kinds and not content and not text.isspace():
        emoji = _EMOTICON.search(text) or any(unicodedata.category(ch) == "So" for ch in text)
        kinds.add("emoji" if emoji else "punctuation")
    return content, kinds


def is_chit_chat(text: str) -> bool:
    """True when the message holds nothing but greetings, thanks, small talk and the like."""
    return not _content_and_chit_chat(text)[0]


def gate_batch(events: Sequence[Event]) -> GateDecision:
    """Decide whether the batch is worth an extraction; names the messages that carry content."""
    speakers = [e for e in events if e.role in ("user", "other")]
    if not speakers:
        return GateDecision(memorable=False, reason="no user or other-speaker messages")
    memorable: list[str] = []
    kinds: set[str] = set()
    # "Hey Tom!" is a greeting: the names of the people talking are not content by themselves.
    names = {e.speaker for e in events if e.speaker.strip()}
    addressee = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b", re.IGNORECASE)
    for event in speakers:
        text = addressee.sub(" ", f"{event.text} {event.caption or ''}")  # a shared photo counts
        content, seen = _content_and_chit_chat(text)
        kinds |= seen
        if content:
            memorable.append(event.id)
    if memorable:
        reason = f"{len(memorable)} of {len(speakers)} messages carry content"
        return GateDecision(memorable=True, reason=reason, memorable_event_ids=memorable)
    order = [*_PHRASES, "laughter", "emoji", "punctuation"]
    return GateDecision(memorable=False, reason="chit-chat only: " + ", ".join(k for k in order if k in kinds))
