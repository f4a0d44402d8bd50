"""Reject a candidate fact its source messages do not support, judged by their words alone.

A small local model turns "hi!" into "User is a musician who loves jazz", "I can't stand horror
movies" into "User is a horror fan", and "my dog loves the beach" into a fact about the user.
Three checks catch those, cheaply and without a model:

- Overlap: at least `MIN_OVERLAP` of the fact's content words must appear in the sources,
  after lowercasing, light stemming and a few synonyms. Stopwords, the subject's own name,
  framing words ("user", "mentioned", "plans") and sentiment words do not count. Dates that
  `resolve_relative_dates` makes from the sources' relative phrases, and the messages' own
  dates, count as found.
- Polarity: a word the fact says negatively ("dislikes horror", "not allergic") must be said
  negatively somewhere in the sources, and a word it says plainly must be said plainly
  somewhere. A feeling word ("love", "can't stand") sets the polarity of the words after it;
  elsewhere a negation reaches only the word it governs. Idioms ("can't wait",
  "nothing like") negate nothing.
- Subject: a fact about the speaker fails when every source clause with its words is about a
  third party ("my dog loves ...", "she ...", "Nadia wants ...") that the fact never names.

0.5 lets a fact paraphrase half its words ("dislikes scary films" for "can't stand horror
movies") and still rejects facts copied from a prompt's examples, which share almost none.
Measured on LoCoMo's dev split: 80% of its GPT-written observations pass against their own
source turns (they paraphrase heavily; 86% at 0.4, 67% at 0.6), 0.07% pass against a random
turn, and 96 of 101 observations turned from "loves" to "dislikes" are rejected.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from personagraph.memory.models import Event

from .dates import MONTHS, resolve_relative_dates
from .explicit import RELATIONS
from .schema import CandidateFact, GroundingResult

MIN_OVERLAP = 0.5
_NEGATION_REACH = 4  # how many small words may stand between "not"/"never" and the word it negates


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS = _words(
    "a an the and or but if so to of in on at by for with about from as into onto than then that this these "
    "those it its is am are was were be been being do does did have has had having can could would should will "
    "shall may might must i me my mine myself you your we our us they them their he him his she her who whom "
    "which what when where why how there here some any all each every very really just also too quite much "
    "many more most lot lots bit such own same other s t d ll m re ve up out over again still even only one "
    "thing things something anything stuff way kind sort get got i'm i've i'll i'd you're we're they're "
    "let"
)
_FRAMING = _words(  # words a writer adds around a fact without adding to it
    "user assistant speaker person mentioned mention mentions said says say stated states told tells shared "
    "shares share noted notes note expressed expresses express asked asks ask want wants wanted wish named "
    "called name currently recently now also plan plans planning planned intend intends intending going "
    "trip someone somebody interest interested who find finds found value values valued appreciates "
    "appreciated consider considers considered considering show shows showed suggest suggests suggested "
    "encourage encourages encouraged treasure treasures treasured supportive importance greatly deeply"
)
_POSITIVE = _words("love like enjoy adore fan favourite favorite prefer fond keen passionate stand appreciate")
_NEGATIVE_WORDS = _words("hate dislike detest loathe despise avoid avoids")
_NEGATORS = _words("not no never nothing none neither nor without cannot longer")
_SENTIMENT = _POSITIVE | _NEGATIVE_WORDS | _NEGATORS
_SYNONYMS = {  # stems that name the same thing; both sides map to the first
    "film": "movi", "mum": "mother", "mom": "mother", "dad": "father", "kid": "child", "children": "child",
    "job": "work", "employ": "work", "favorit": "favourit", "colour": "color", "pup": "puppi", "flat": "apartment",
}
_NUMBERS = {w: str(n) for n, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                              "nine", "ten", "eleven", "twelve"))}
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_CLAUSE = re.compile(
    r"[.!?;:,\n]+|\s*[-–—]+\s+|\s+(?:but|and|so|because|although|though|while|whereas|however)\s+"
    r"|\s+(?:as|since|cause|'cause|cos)\s+(?=(?:i|i'm|we|he|she|they|it|my)\b)",
    re.IGNORECASE,
)
_IDIOMS = re.compile(  # negative words that negate nothing: "can't wait", "there's nothing like it"
    r"\b(?:can(?:'|’)?t|cannot|can not) (?:wait|believe|help)\b|\bnothing like\b|\b(?:never|don't|do not) forget\b"
    r"|\bno (?:doubt|wonder|problem|worries)\b|\bnot (?:only|just|bad)\b|\bnever mind\b"
    r"|\b(?:don't|didn't|isn't|aren't|wasn't|won't) (?:you|it|they|we|he|she)\s*\?",
    re.IGNORECASE,
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_THIRD_PARTY_PRONOUNS = _words("he she they he's she's they're his her their")
_OTHERS = _words(
    "his her their its they them he she family families kids children parents friends team teammates pets dogs "
    "cats everyone people"
)
_LIKE_AFTER = _words("i you we they he she who not really also just still do does did would")
_FIRST_PERSON = _words("i i'm i've i'll i'd we we're we've me us")


def _stem(word: str) -> str:
    """Plural, tense and -ing off, so 'movies', 'movie', 'loved' and 'loving' meet."""
    word = _NUMBERS.get(word, word)
    if len(word) > 4 and word.endswith(("ies", "ied")):
        word = word[:-3] + "i"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "aeiouls":
                word = word[:-1]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if word.endswith("y") and len(word) > 2:
        word = word[:-1] + "i"
    return _SYNONYMS.get(word, word)


_POSITIVE_STEMS = frozenset(_stem(w) for w in _POSITIVE)
_NEGATIVE_STEMS = frozenset(_stem(w) for w in _NEGATIVE_WORDS)
_NOT_CONTENT = frozenset(_stem(w) for w in _SENTIMENT | _FRAMING)


def _tokens(text: str) -> list[str]:
    """Lowercase words, contractions opened ("can't" -> "can not"); CJK characters one by one."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = re.sub(r"\bcan't\b|\bcannot\b", "can not", text)
    text = re.sub(r"\bwon't\b", "will not", text)
    text = re.sub(r"n't\b", " not", text)
    text = re.sub(r"'s\b", "", text)  # "Sam's" is Sam, "it's" is it
    out: list[str] = []
    for token in _TOKEN.findall(text):
        out += _CJK.findall(token) if _CJK.search(token) else [token]
    return out


def _content(tokens: Iterable[str], ignore: frozenset[str] = frozenset()) -> list[str]:
    return [stem for t in tokens if t not in _STOPWORDS and t not in ignore
            and (stem := _stem(t)) not in _NOT_CONTENT and stem not in _STOPWORDS]


def _same_family(a: str, b: str) -> bool:
    """Same stem, or a shared start long enough to be one word family ('allergic', 'allergy')."""
    if a == b:
        return True
    if len(a) < 5 or len(b) < 5 or a[:5] != b[:5]:
        return False
    shared = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return shared >= min(len(a), len(b)) - 3


class _Vocabulary:
    """A set of stems that also answers for word families, indexed by the first five letters."""

    def __init__(self, stems: Iterable[str]) -> None:
        self.stems = set(stems)
        self.by_prefix: dict[str, list[str]] = {}
        for stem in self.stems:
            self.by_prefix.setdefault(stem[:5], []).append(stem)

    def __contains__(self, word: str) -> bool:
        return word in self.stems or any(_same_family(word, v) for v in self.by_prefix.get(word[:5], ()))


def _polarities(tokens: Sequence[str]) -> dict[str, bool]:
    """For each word stem of a clause, whether the clause says it negatively.

    A feeling word ("loves", "can't stand", "dislikes") sets the polarity of the words after it
    (and of those before the first one); without one a negation marks only the word it governs: "I'm not allergic to peanuts" negates
    "allergic", "people who were not from my circle" leaves "people" alone.
    """
    stems = [_stem(t) for t in tokens]
    negators = [i for i, t in enumerate(tokens) if t in _NEGATORS]
    feelings = [i for i, s in enumerate(stems) if s in _NEGATIVE_STEMS or s in _POSITIVE_STEMS and (
        s != "lik" or i < 2 or tokens[i - 1] in _LIKE_AFTER)]  # not "looks like", "like this"
    if feelings:  # each word takes the feeling before it: "I dislike X as I prefer Y"
        negative = {}
        for n, at in enumerate(feelings):
            since = feelings[n - 1] if n else -1
            negative[at] = (stems[at] in _NEGATIVE_STEMS) != any(since < i < at for i in negators)
        out: dict[str, bool] = {}
        for at, stem in enumerate(stems):
            governing = max((f for f in feelings if f <= at), default=feelings[0])
            out[stem] = out.get(stem, False) or negative[governing]
        return out
    out = {}
    for at, stem in enumerate(stems):
        out[stem] = out.get(stem, False) or _negated(tokens, at)
    return out


def _negated(tokens: Sequence[str], at: int) -> bool:
    """Is the word at `at` under a negation: "not allergic", "never been on a team", "no meat"?"""
    for back in range(at - 1, max(at - 1 - _NEGATION_REACH, -1), -1):
        if tokens[back] in _NEGATORS:
            return True
        if tokens[back] not in _STOPWORDS and _stem(tokens[back]) not in _NOT_CONTENT:
            return False  # another content word comes between: "not so great experience on a hike"
    return False


def _clauses(text: str) -> list[list[str]]:
    text = _IDIOMS.sub(" ", text)
    return [tokens for part in _CLAUSE.split(text) if (tokens := _tokens(part))]


def _source_vocabulary(sources: Sequence[Event]) -> _Vocabulary:
    """Source words, plus the dates their relative phrases and their own timestamps stand for."""
    words: set[str] = set()
    for event in sources:
        dated = resolve_relative_dates(event.text, event.time)
        stamp = f"{event.time.day} {MONTHS[event.time.month - 1]} {event.time.year}"
        words.update(_stem(t) for t in _tokens(f"{event.text} {dated.text} {stamp} {event.caption or ''}"))
    return _Vocabulary(words)


def _clause_subject(tokens: Sequence[str], first_hit: int) -> str | None:
    """Who a clause is about up to its first hit: "" for the speaker, a third party ("dog", "she"), or None."""
    for i, token in enumerate(tokens[:first_hit + 1]):
        if token in _FIRST_PERSON:
            return ""
        if token == "my":
            relation = next((r for r in (" ".join(tokens[i + 1:i + 3]), tokens[i + 1] if i + 1 < len(tokens) else "")
                             if r in RELATIONS), None)
            if relation:
                return relation
        if token in _THIRD_PARTY_PRONOUNS:
            return token
    return None


def _named_third_parties(source: str, speakers: set[str]) -> set[str]:
    """Names that act in a clause ("Nadia wants", "Biscuit loves") other than the speakers'."""
    names = re.findall(r"\b([A-Z][a-z]+)\s+(?:is|was|has|wants|loves|likes|enjoys|hates|says|said|thinks|\w+s)\b",
                       source)
    return {n.lower() for n in names} - speakers - _STOPWORDS - _NOT_ACTORS


# Capitalised sentence openers the name pattern above would read as actors ("Please always ...").
_NOT_ACTORS = frozenset(("please", "kindly", "thanks", "thank", "sorry", "hi", "hey", "hello", "ok", "okay", "also", "just"))


def _mentions_others(fact: CandidateFact) -> bool:
    """Does the fact name anyone besides its subject ("her family", "his dogs", "Nadia")?"""
    words = fact.text.split()[1:]
    lowered = {w.lower().strip(".,!?;:'") for w in words}
    names = {w.strip(".,!?;:'").removesuffix("'s") for w in words if w[:1].isupper()} - set((fact.subject or "").split())
    return bool(lowered & _OTHERS or {w.removesuffix("'s") for w in lowered} & set(RELATIONS) or names)


def _about_speaker(fact: CandidateFact, speakers: set[str]) -> bool:
    subject = (fact.subject or fact.text.split()[0]).lower().strip(" .:'")
    return subject in speakers or subject in ("user", "the user", "i", "me", "speaker")


def _verdict(supported: bool, score: float, reason: str) -> GroundingResult:
    return GroundingResult(supported=supported, score=round(min(max(score, 0.0), 1.0), 3), reason=reason)


def check_grounding(fact: CandidateFact, sources: Sequence[Event], names: Sequence[str] = ()) -> GroundingResult:
    """Is `fact` supported by the words of `sources` (those of them it names)?

    The score is the share of its content words found in them, 0 when a polarity or subject
    conflict rejects it. `names` (the conversation's other speakers) are not content words:
    "Melanie told Caroline about pottery" rests on pottery, not on the names.
    """
    sources = [e for e in sources if e.id in fact.sources] or list(sources)
    if not sources:
        return _verdict(False, 0.0, "no source messages")
    speakers = {e.speaker.lower() for e in sources}
    subject_words = set(_tokens(fact.subject or "")) | {w for s in [*speakers, *names] for w in _tokens(s.lower())}
    subject_words -= set(_tokens(fact.object or ""))  # "Caroline's name is Caroline": the name is the content
    fact_text = f"{fact.text} {fact.object or ''}"
    wanted = set(_content(_tokens(fact_text), frozenset(subject_words)))
    if not wanted:
        return _verdict(False, 0.0, "the fact has no content words to check")
    vocabulary = _source_vocabulary(sources)
    found = {w for w in wanted if w in vocabulary}
    score = len(found) / len(wanted)
    if score < MIN_OVERLAP:
        missing = ", ".join(sorted(wanted - found)[:6])
        return _verdict(False, score, f"only {len(found)} of {len(wanted)} content words in the sources (missing: {missing})")
    source_clauses = [c for e in sources for c in _clauses(e.text)]
    if conflict := _polarity_conflict(fact.text, source_clauses, found):
        return _verdict(False, 0.0, conflict)
    if _about_speaker(fact, speakers) and (
            other := _only_third_party(fact, sources, source_clauses, _Vocabulary(found), speakers)):
        return _verdict(False, 0.0, f"the sources say this of {other!r}, not of {fact.subject or 'the speaker'}")
    return _verdict(True, score, f"{len(found)} of {len(wanted)} content words in the sources")


def _hits(clause: Sequence[str], found: _Vocabulary) -> list[int]:
    return [i for i, t in enumerate(clause) if _stem(t) in found]


def _polarity_conflict(text: str, source_clauses: list[list[str]], found: set[str]) -> str | None:
    """A word the fact says negatively must be said negatively in the sources, and the other way round."""
    source = [(_polarities(c), c) for c in source_clauses]
    for clause in _clauses(text):
        for word, negative in _polarities(clause).items():
            if word not in found:
                continue
            said = [(pol, c) for pols, c in source for stem, pol in pols.items() if _same_family(stem, word)]
            if said and all(pol != negative for pol, _ in said):
                side = "negative" if negative else "not negative"
                return f"polarity flip: {word!r} is {side} in the fact, not in the sources ({' '.join(said[0][1])!r})"
    return None


def _only_third_party(fact: CandidateFact, sources: Sequence[Event], source_clauses: list[list[str]],
                      found: _Vocabulary, speakers: set[str]) -> str | None:
    """The third party every source clause with the fact's words is about, if the fact never names it."""
    named = {_stem(t) for t in _tokens(fact.text)}
    pronouns_count = not _mentions_others(fact)  # "she loves jazz" can be about "his wife" the fact names
    actors = set().union(*(_named_third_parties(e.text, speakers) for e in sources))
    parties: set[str] = set()
    for clause in source_clauses:
        hits = _hits(clause, found)
        if not hits:
            continue
        party = _clause_subject(clause, hits[0])
        if party is None and clause[0] in actors:
            party = clause[0]
        if not party or _stem(party.split()[-1]) in named or (party in _THIRD_PARTY_PRONOUNS and not pronouns_count):
            return None
        parties.add(party)
    return ", ".join(sorted(parties)) or None
