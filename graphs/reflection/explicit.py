"""Facts people state outright ("I'm allergic to peanuts"), found by patterns, with no model.

This runs before any LLM and alone in zero-LLM mode, so it favours precision: a sentence is
read only when it asserts something in the first person (not a question, not after "if",
"maybe" or a negation in the same clause), and objects stop at the clause's end. A fact's text
is the speaker's own clause turned into the third person ("I really love my job" -> "Sam
really loves Sam's job"), so every word of it can be found in the message. Statements about a
relative ("my sister loves horror films") are kept about that relative, never the speaker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from personagraph.memory.models import Event, FactKind

from .dates import MONTHS, WEEKDAYS, resolve_relative_dates
from .reported import own_words
from .schema import CandidateEntity, CandidateFact

RELATIONS: dict[str, str] = {  # what a speaker calls someone ("my sister") -> entity type
    **dict.fromkeys((
        "sister", "brother", "wife", "husband", "partner", "son", "daughter", "mom", "mum", "mother", "dad",
        "father", "friend", "best friend", "boyfriend", "girlfriend", "fiance", "fiancé", "fiancee", "fiancée",
        "grandma", "grandmother", "grandpa", "grandfather", "aunt", "uncle", "cousin", "niece", "nephew",
        "colleague", "boss", "roommate", "flatmate", "housemate", "neighbour", "neighbor", "stepson",
        "stepdaughter", "stepmom", "stepdad", "kid", "baby",
    ), "person"),
    **dict.fromkeys((
        "dog", "cat", "puppy", "kitten", "rabbit", "bunny", "hamster", "parrot", "bird", "horse", "pony",
        "turtle", "tortoise", "snake", "lizard", "fish", "guinea pig", "ferret",
    ), "pet"),
}
_RELATION_PREDICATE = {"mom": "mother", "mum": "mother", "dad": "father", "grandma": "grandmother",
                       "grandpa": "grandfather", "fiancé": "fiance", "fiancee": "fiance", "fiancée": "fiance"}
_JOBS = (
    "teacher", "nurse", "doctor", "physician", "engineer", "developer", "programmer", "designer", "lawyer",
    "solicitor", "accountant", "architect", "chef", "cook", "baker", "barista", "bartender", "waiter", "waitress",
    "writer", "author", "journalist", "editor", "artist", "painter", "musician", "singer", "photographer",
    "student", "researcher", "scientist", "professor", "lecturer", "tutor", "dentist", "pharmacist", "vet",
    "veterinarian", "surgeon", "therapist", "psychologist", "counselor", "counsellor", "consultant", "analyst",
    "manager", "director", "ceo", "founder", "entrepreneur", "freelancer", "contractor", "electrician",
    "plumber", "carpenter", "mechanic", "driver", "pilot", "firefighter", "paramedic", "officer", "soldier",
    "librarian", "cashier", "clerk", "receptionist", "secretary", "assistant", "farmer", "gardener", "cleaner",
    "nanny", "caregiver", "carer", "worker", "coach", "trainer", "instructor", "banker", "broker", "economist",
    "translator", "interpreter", "actor", "actress", "dancer", "filmmaker", "producer", "animator",
    "illustrator", "technician", "administrator", "intern", "apprentice", "practitioner", "midwife",
    "paralegal", "recruiter", "marketer", "salesperson", "homemaker", "policeman", "policewoman",
)
# "I'm a terrible cook" or "a former nurse" says nothing about today's job.
_NOT_A_JOB = frozenset((
    "good", "great", "bad", "terrible", "awful", "decent", "amazing", "excellent", "better", "best", "worst",
    "huge", "big", "little", "lazy", "picky", "fussy", "messy", "keen", "avid", "total", "complete", "natural",
    "born", "wannabe", "aspiring", "failed", "former", "ex", "retired", "amateur", "hobby", "frustrated",
    "budding", "would-be", "future", "proud", "home",
))
_NOT_NAMES = frozenset((
    "i", "i'm", "the", "a", "an", "he", "she", "they", "it", "we", "you", "this", "that", "there", "here", "who",
    "what", "is", "was", "and", "but", "so", "today", "yesterday", "tomorrow", "tonight", "just", "also",
    "really", "has", "had", "loves", "likes", "not", "no", "my", "our", *MONTHS, *WEEKDAYS,
))
_ADV = (r"(?:(?:really|absolutely|totally|truly|just|also|still|actually|definitely|genuinely|seriously|"
        r"honestly|personally|kind of|sort of|always|usually|generally|very|quite|so|super|pretty|now|even|"
        r"currently|recently|finally|officially|severely|mildly|deathly|highly|literally|strongly|deeply|"
        r"typically|mostly|particularly|especially|much|completely|strictly|steadfastly|firmly)\s+)*")
_I = r"(?<![\w'])i\s+" + _ADV
_I_AM = r"(?<![\w'])(?:i'm|i am|im)\s+" + _ADV
_I_HAVE = r"(?<![\w'])(?:i've|i have)\s+" + _ADV
_REL = r"(?P<rel>" + "|".join(sorted(RELATIONS, key=len, reverse=True)) + r")"
_NAME = r"(?P<name>[^\W\d_][\w'-]*(?:\s+[^\W\d_][\w'-]*){0,2})"
# A clause ends at punctuation, at a subordinating word, or where a new subject starts.
_CLAUSE_END = re.compile(
    r"\s*(?:[,;:!?()\"—–]|\.(?:\s|$)|-(?=\s)|$)|\s+(?:because|but|though|although|since|so|which|who|when|while|"
    r"whereas|unless|if|until|except|cause|cos|as long as|as (?:i|i'm|i've|my|we|he|she|they|it)|"
    r"and (?:i|i'm|i've|my|we|he|she|they|it|that|then|also|only|just|always|never|usually|often|prefer|avoid|"
    r"love|like|hate|enjoy|dislike|try|want|need|find|can't|don't|do|am|have|would|will|get)|"
    r"or (?:i|my|we|he|she|they))\b",
    re.IGNORECASE,
)
_TIME_WORDS = "|".join((*MONTHS, *WEEKDAYS, "spring", "summer", "autumn", "fall", "winter"))
# Where a time expression starts, the object has ended: "Tokyo next March" -> "Tokyo".
_PREPOSITION = r"(?:on|in|at|by|from|since|until|till|during|for|around|before|after|within)\s+"
_TIME_UNITS = (r"(?:day|week|weekend|month|year|morning|afternoon|evening|night|time|semester|term|season|"
               + _TIME_WORDS + r")s?\b")
_TIME_TAIL = re.compile(  # a bare number is no time ("Paddington 2"), "on 24 March" or "the 3rd" is
    r"\s+(?:" + _PREPOSITION + r"(?:the\s+)?\d|(?:the\s+)?\d{1,2}(?:st|nd|rd|th)\b|\d{1,2}(?::\d\d)?\s*[ap]\.?m\b"
    r"|(?:" + _PREPOSITION + r")?(?:the\s+)?(?:(?:" + _TIME_WORDS + r")\b|yesterday|today|tonight|tomorrow"
    r"|(?:last|next|this|every|each|the other)\s+" + _TIME_UNITS + r"|(?:a|one|two|three|four|five|six|a few|a couple of|several|\d+)\s+"
    r"(?:days?|weeks?|months?|years?)\b|soon\b|later\b|now\b|right now|recently|already|again|someday|some day"
    r"|these days|nowadays|anymore|ago\b))",
    re.IGNORECASE,
)
_ELABORATION = re.compile(r"\s+(?:such as|like|due to|because of|including|especially|e\.g\.)\s", re.IGNORECASE)
_LOOSE_END = re.compile(r"(?:\s+(?:or|and|of|a|an|the|to|in|with|for|that|which|who|on|at|by))+$", re.IGNORECASE)
_PLACE_TAIL = re.compile(r"\s+(?:in|on|at|with|for|to|near|as|from|and|where)\s", re.IGNORECASE)
_FILLER_TAIL = re.compile(r"(?:\s+(?:too|as well|a lot|so much|very much|lots|anyway|though|really|actually|"
                          r"originally|mostly|honestly|personally))+$",
                          re.IGNORECASE)
_JUNK_START = frozenset((  # an object starting so points elsewhere: "I love it", "I love your turtles"
    "it", "that", "this", "them", "those", "these", "him", "her", "you", "your", "his", "their", "its",
    "everything", "anything", "nothing", "something", "stuff", "what", "how", "when", "where", "why", "who",
    "which", "there", "here", "myself", "any", "lots", "way", "idea", "thought", "fact", "feeling", "look",
    "sound", "vibe", "vibes",
))
_JUNK_OBJECT = _JUNK_START | {"so", "one", "some", "all", "both", "the", "a", "an", "to", "things", "too"}
# Before "I", a word outside this set usually opens a relative clause: "something I love is ..."
_BEFORE_I = frozenset((
    "and", "but", "so", "because", "cause", "'cause", "cos", "since", "as", "that", "why", "now", "also", "then",
    "yeah", "yes", "yep", "well", "oh", "ok", "okay", "actually", "honestly", "really", "personally", "still",
    "think", "guess", "know", "feel", "mean", "though", "although", "when", "while", "plus", "definitely",
    "just", "besides", "anyway", "today", "lately", "recently", "nowadays", "currently", "hey", "hi", "hello",
    "haha", "lol", "sure", "course", "fact", "truth", "news", "update", "again", "these", "days", "always",
))
_QUESTION_START = re.compile(
    r"^\W*(?:do|does|did|am|are|is|was|were|can|could|would|should|shall|what|who|where|when|why|how|which|"
    r"whose|have you)\b", re.IGNORECASE)
_DOUBT = re.compile(
    r"\b(?:if|unless|whether|suppose|supposing|imagine|pretend|wish|maybe|perhaps|hypothetically|not|never|"
    r"no longer|wonder|doubt|unsure|pretending|were)\b|n't\b", re.IGNORECASE)
_CLAUSE_START = re.compile(r"[,;:]|\b(?:but|and|so|because|although|though|while|whereas|then)\b",
                           re.IGNORECASE)
_PRONOUNS = (
    (re.compile(r"(?<![\w'])(?:i'm|i am|im)(?![\w'])", re.IGNORECASE), "{s} is"),
    (re.compile(r"(?<![\w'])(?:i've|i have)(?![\w'])", re.IGNORECASE), "{s} has"),
    (re.compile(r"(?<![\w'])i'll(?![\w'])", re.IGNORECASE), "{s} will"),
    (re.compile(r"(?<![\w'])i'd(?![\w'])", re.IGNORECASE), "{s} would"),
    (re.compile(r"(?<![\w'])(?:my|mine)(?![\w'])", re.IGNORECASE), "{s}'s"),
    (re.compile(r"(?<![\w'])(?:me|myself|i)(?![\w'])", re.IGNORECASE), "{s}"),
)
_KEEP_VERB = frozenset((  # after "I": verbs that do not take an -s ("Sam can't", "Sam moved")
    "can", "can't", "cannot", "will", "won't", "would", "should", "could", "must", "might", "may", "grew",
    "got", "had", "was", "went", "came", "became", "began", "found", "quit", "left", "took", "made",
))
_IRREGULAR = {"do": "does", "don't": "doesn't", "go": "goes", "have": "has", "am": "is", "haven't": "hasn't"}


def _words(text: str) -> list[str]:
    return text.split()


def _sentences(text: str) -> Iterator[tuple[str, bool]]:
    """The sentences of a message, each with whether it is a question."""
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text.replace("’", "'").replace("‘", "'")):
        sentence = sentence.strip(" -*•\t")
        if sentence:
            yield sentence, sentence.endswith("?") or bool(_QUESTION_START.match(sentence))


def _asserted(sentence: str, start: int) -> bool:
    """No negation, condition or doubt between the clause's start and the statement, and an "I"
    that opens a clause rather than a relative one ("the job I love" says nothing of jobs)."""
    clause_starts = [m.end() for m in _CLAUSE_START.finditer(sentence, 0, start)]
    if _DOUBT.search(sentence, clause_starts[-1] if clause_starts else 0, start):
        return False
    if re.match(r"(?i)i\b", sentence[start:]):
        before = re.search(r"([\w']+)\s*$", sentence[:start])
        return before is None or before[1].lower() in _BEFORE_I
    return True


def _conjugate(verb: str) -> str:
    low = verb.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low in _KEEP_VERB or low.endswith("ed") or not low.isalpha():
        return verb
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    return verb + ("es" if re.search(r"(?:s|sh|ch|x|z|o)$", low) else "s")


def _pronouns(text: str, speaker: str) -> str:
    for pattern, replacement in _PRONOUNS:
        text = pattern.sub(replacement.replace("{s}", speaker), text)
    return text


def _third_person(fragment: str, speaker: str) -> str:
    """'I really love my job' said by Sam -> 'Sam really loves Sam's job'."""
    head = re.match(r"(?i)i\s+(" + _ADV + r"(?:never\s+)?)([\w']+)", fragment)
    if head:
        fragment = f"I {head[1]}{_conjugate(head[2])}{fragment[head.end():]}"
    fragment = _pronouns(fragment, speaker)
    return fragment[0].upper() + fragment[1:]


def _clause_end(sentence: str, start: int) -> int:
    m = _CLAUSE_END.search(sentence, start)
    return m.start() if m else len(sentence)


def _tidy_object(raw: str, speaker: str, cut: bool = False, proper: bool = False) -> str | None:
    """The bare thing a fact is about: no time, no trailing filler, no leading article.

    `cut` also stops at prepositions ("Tidewater Games in Bristol"); `proper` wants a name.
    """
    obj = raw
    for tail in (_TIME_TAIL, _PLACE_TAIL) if cut else (_TIME_TAIL,):
        if m := tail.search(obj):
            obj = obj[:m.start()]
    if m := _ELABORATION.search(obj):
        obj = obj[:m.start()]
    obj = _FILLER_TAIL.sub("", obj).strip(" .'\"")
    obj = re.sub(r"^(?:a|an|the|some|any|all)\s+", "", obj)
    words = _words(obj)
    if not words or obj.lower() in _JUNK_OBJECT or words[0].lower() in _JUNK_START:
        return None
    if proper and not words[0][0].isupper():
        return None
    return _LOOSE_END.sub("", " ".join(_words(_pronouns(obj, speaker))[:10]))


def _snake(text: str) -> str:
    return "_".join(re.findall(r"\w+", text.lower())[:3])


def _favourite(category: str | None) -> str:
    """'favourite_band' for "my favourite band is"; plain 'favourite' when the category is vague."""
    words = _words(category or "")
    return "favourite_" + _snake(category or "") if 0 < len(words) <= 2 and words[0] not in ("one", "thing") \
        else "favourite"


def _proper_name(text: str) -> str | None:
    """The leading capitalised words of a match ('Nadia is coming' -> 'Nadia'), if any."""
    words = []
    for raw in _words(text):
        word = raw.strip(".,!?;:\"")
        possessive = word.endswith("'s")
        word = word.removesuffix("'s").strip("'")
        if not word or not word[0].isupper() or word.lower() in _NOT_NAMES:
            break
        words.append(word)
        if possessive or raw[-1] in ".,!?;:":  # "Sara's birthday", "my friend, Jo, lives ..."
            break
    return " ".join(words) or None


@dataclass(frozen=True)
class _Found:
    """One statement: what the fact says and the span of the sentence it rests on."""

    predicate: str
    kind: FactKind
    obj: str
    start: int
    end: int
    subject: str | None = None  # None: the speaker
    text: str | None = None  # None: the clause from start to end in the third person
    confidence: float = 0.9
    entity: tuple[str, str] | None = None  # (name, entity_type)
    alias: str | None = None
    dated_from_message: bool = False  # plans hold from when they were said, not from their date


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    predicate: str | Callable[[re.Match[str]], str]
    kind: FactKind
    cut: bool = False  # the object ends at a preposition ("a nurse at St Mary's" -> "nurse")
    entity_type: str | None = None  # the object is a proper noun of this type: a place, an organisation
    template: str | None = None  # the fact's text, when the clause itself reads badly: {s} speaker, {o} object
    confidence: float = 0.9
    plan: bool = False


def _rule(pattern: str, predicate: str | Callable[[re.Match[str]], str], kind: FactKind,
          **options: str | bool | float) -> _Rule:
    cut = bool(options.pop("cut", False) or options.get("entity_type"))
    return _Rule(re.compile(pattern, re.IGNORECASE), predicate, kind, cut, **options)  # type: ignore[arg-type]


_JOB = r"(?:[\w-]+\s+){0,3}?(?:" + "|".join(_JOBS) + r")(?:\s+(?:" + "|".join(_JOBS) + r"))*"
_CAPITAL = r"(?-i:[A-Z])"
_STATEMENTS: tuple[_Rule, ...] = (
    _rule(_I_AM + r"allergic to\s+", "allergic_to", "attribute"),
    _rule(_I_HAVE + r"(?:got\s+)?(?:a\s+|an\s+)?(?:severe\s+|mild\s+|bad\s+|serious\s+|slight\s+)?"
          r"(?P<o>[\w-]+(?:\s[\w-]+)?)\s+allerg(?:y|ies)\b", "allergic_to", "attribute"),
    _rule(_I_AM + r"(?:a\s+|an\s+)?(?:strict\s+|committed\s+|lifelong\s+)?(?P<o>vegetarian|vegan|pescatarian|"
          r"pescetarian|plant-based|teetotal|keto|halal|kosher)\b", "diet", "attribute"),
    _rule(_I_AM + r"(?P<o>lactose[- ]intolerant|gluten[- ]intolerant|coeliac|celiac|diabetic|asthmatic|"
          r"epileptic|colou?r-?blind|pregnant)\b", "condition", "attribute"),
    _rule(_I + r"(?:follow|am on|'m on|eat|keep|adhere to|stick to)\s+(?:a\s+)?(?:strict\s+|mostly\s+)?(?P<o>vegan|vegetarian|"
          r"pescatarian|keto|ketogenic|paleo|gluten-free|dairy-free|low-carb|low-sodium|halal|kosher|plant-based|"
          r"mediterranean)\s+diet\b", "diet", "attribute"),
    _rule(_I_AM + r"(?:sensitive|intolerant)\s+to\s+", "intolerant_to", "attribute"),
    _rule(_I + r"(?:don't|do not|never|can't|cannot|can not)\s+" + _ADV + r"(?:eat|drink|touch|use|wear|buy)\s+",
          "avoids", "preference"),
    _rule(_I + r"(?:try\s+to\s+)?(?:avoid|steer clear of|stay away from)\s+", "avoids", "preference"),
    _rule(_I + r"prefer\s+(?!not\b)", "prefers", "preference"),
    _rule(_I + r"(?:would\s+)?(?:prefer|try|choose)\s+not\s+to\s+", "avoids", "preference"),
    _rule(_I + r"(?:love|like|enjoy|adore)\s+", "likes", "preference"),
    _rule(_I_AM + r"(?:a\s+)?(?:big\s+|huge\s+|massive\s+)?fan of\s+", "likes", "preference"),
    _rule(_I_AM + r"(?:into|passionate about|obsessed with|crazy about|mad about)\s+", "likes", "preference"),
    _rule(r"(?:^|(?<=[,;:]\s))(?P<o>[\w' -]{2,40}?)\s+(?:works?|is|are)\s+(?:best|better|well)\s+for\s+me\b",
          "prefers", "preference"),
    _rule(r"\bmy\s+" + _ADV + r"(?:all[- ]time\s+)?favou?rite\s+(?P<cat>[\w -]{2,30}?)\s+(?:is|are)\s+",
          lambda m: _favourite(m["cat"]), "preference"),
    _rule(r"(?:^|(?<=[,;:]\s))(?P<o>[\w' -]{2,40}?)\s+(?:is|are)\s+(?:definitely\s+|probably\s+|easily\s+)?"
          r"my\s+(?:all[- ]time\s+)?favou?rite(?:\s+(?P<cat>\w+))?",
          lambda m: _favourite(m["cat"]), "preference"),
    _rule(_I + r"(?:hate|dislike|detest|loathe|despise|can't stand|cannot stand|can not stand|"
          r"(?:don't|do not)\s+" + _ADV + r"(?:like|enjoy|care for))\s+", "dislikes", "preference"),
    _rule(_I_AM + r"not\s+(?:a\s+)?(?:big\s+|huge\s+)?(?:fan of|into|interested in)\s+", "dislikes", "preference"),
    _rule(_I_HAVE + r"(?:got\s+)?(?:no\s+(?:interest|desire)\s+in|(?:a|an)\s+(?:[\w-]+\s+){0,2}?(?:aversion|dislike|"
          r"distaste|disdain|hatred)\s+(?:to|for|of|towards))\s+", "dislikes", "preference"),
    _rule(_I_HAVE + r"(?:got\s+)?(?:a|an)\s+(?:[\w-]+\s+){0,2}?(?:preference|liking|fondness|passion|love)\s+for\s+",
          "prefers", "preference"),
    _rule(_I_HAVE + r"(?:got\s+)?(?:a|an)\s+(?:[\w-]+\s+){0,2}?(?:fear|phobia|terror)\s+of\s+", "fears", "attribute"),
    _rule(r"\bmy\s+name(?:'s|\s+is)\s+(?P<o>[^\W\d_][\w'-]*(?:\s+" + _CAPITAL + r"[\w'-]*)?)", "name",
          "attribute"),
    _rule(r"\b(?:call\s+me|i\s+go\s+by)\s+(?P<o>" + _CAPITAL + r"[\w'-]*)", "name", "attribute",
          template="{s} wants to be called {o}"),
    _rule(_I_AM + r"(?P<o>\d{1,3})(?:\s+(?:years?|yrs?)\s+old|\s*y/?o)\b", "age", "attribute"),
    _rule(r"(?<![\w'])i(?:'ve|\s+have)?\s+" + _ADV + r"turned\s+(?P<o>\d{1,3})\b", "age", "attribute"),
    _rule(_I + r"(?:live|reside)\s+in\s+", "lives_in", "attribute", entity_type="place"),
    _rule(_I_AM + r"(?:living|based)\s+in\s+", "lives_in", "attribute", entity_type="place"),
    _rule(r"(?<![\w'])i(?:'ve|\s+have)?\s+" + _ADV + r"(?:moved|relocated)\s+to\s+", "lives_in", "attribute",
          entity_type="place"),
    _rule(_I_AM + r"(?:moving|relocating)\s+to\s+", "moving_to", "plan", entity_type="place", plan=True),
    _rule(_I_AM + r"(?:originally\s+)?from\s+", "from", "attribute", entity_type="place"),
    _rule(_I + r"(?:come|grew up)\s+(?:from|in)\s+", "from", "attribute", entity_type="place"),
    _rule(_I + r"work\s+as\s+", "works_as", "attribute", cut=True),
    _rule(_I_AM + r"(?:working|employed|starting|starting out)\s+as\s+(?:a\s+|an\s+)?(?P<o>" + _JOB + r")\b",
          "works_as", "attribute"),
    _rule(_I_AM + r"(?:a|an)\s+(?P<o>" + _JOB + r")\b", "occupation", "attribute"),
    _rule(_I_AM + r"(?P<o>retired|unemployed|self-employed|between jobs)\b", "occupation", "attribute"),
    _rule(_I + r"work\s+(?:at|for)\s+", "works_at", "attribute", entity_type="organization"),
    _rule(_I_AM + r"(?:working|starting|employed)\s+(?:as\s+(?:a\s+|an\s+)?(?:[\w-]+\s+){1,4}?)?(?:at|for)\s+",
          "works_at", "attribute", entity_type="organization"),
    _rule(r"(?<![\w'])i(?:'ve|\s+have)?\s+" + _ADV + r"(?:started|got|landed|began)\s+(?:a\s+)?(?:new\s+)?"
          r"(?:job|position|role|internship)\s+(?:as\s+(?:a\s+|an\s+)?(?:[\w-]+\s+){1,4}?)?(?:at|with)\s+",
          "works_at", "attribute", entity_type="organization"),
    _rule(_I_AM + r"(?:flying|travell?ing|heading|driving|going|off|visiting)\s+(?:to\s+)?(?=" + _CAPITAL + ")",
          "travelling_to", "plan", entity_type="place", plan=True, confidence=0.85),
    _rule(_I_AM + r"(?:going|planning|hoping|about|intending)\s+(?:to|on)\s+(?!" + _CAPITAL + r"|the\s)", "plans",
          "plan", plan=True, confidence=0.85),
    _rule(_I + r"(?:plan|intend)\s+to\s+", "plans", "plan", plan=True, confidence=0.85),
    _rule(r"(?<![\w'])i(?:\s+" + _ADV + r"(?:have|own)|'ve\s+got|\s+have\s+got)\s+(?=(?:a|an|one|two|three|four|"
          r"five|\d+)\s)", "has", "attribute", confidence=0.85),
)
_WILL = re.compile(r"(?<![\w'])(?:i'll|i will)\s+" + _ADV, re.IGNORECASE)
_DATE_WORD = re.compile(r"\b(?:" + _TIME_WORDS + r"|\d{1,2}(?:st|nd|rd|th)?|\d{4})\b", re.IGNORECASE)
_NOT_POSSESSIONS = frozenset((  # "I have a question" is not something the speaker owns
    "question", "feeling", "idea", "lot", "bit", "look", "chance", "moment", "minute", "second", "favour", "favor",
    "suggestion", "quick", "few", "couple", "hunch", "clue", "thought", "point", "go", "try", "good", "great",
    "nice", "lovely", "busy", "long", "hard", "tough", "rough", "bad", "terrible", "wonderful", "fun", "blast",
    "problem", "doubt", "sense", "headache", "cold", "hangover", "fever", "break", "day", "week", "weekend",
    "night", "time", "plan", "confession", "request", "issue", "story", "stories", "picture", "photo", "pic",
    "news", "recommendation", "aversion", "dislike", "distaste", "disdain", "hatred", "preference", "liking",
    "fondness", "passion", "love", "fear", "phobia", "terror", "deep-seated", "interest",
))
_RELATIONSHIP_PATTERNS = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"\bmy\s+" + _REL + r"(?:'s\s+name\s+is\s+|,?\s+(?:who\s+)?(?:is\s+)?(?:named|called)\s+|(?P<comma>,)\s*|\s+)"
    + _NAME,
    _I + r"(?:have|'ve got|have got)\s+(?:a|an)\s+" + _REL + r"\s+(?:named|called)\s+" + _NAME,
    r"(?:^|(?<=[,;:]\s))" + _NAME + r"\s+is\s+my\s+" + _REL + r"\b",
))
_THIRD_PARTY = re.compile(
    r"\bmy\s+" + _REL + r"(?:,?\s+(?P<called>" + _CAPITAL + r"[\w'-]*))?,?\s+" + _ADV
    + r"(?P<verb>loves|likes|enjoys|adores|hates|dislikes|detests|can't stand|cannot stand|"
    r"(?:doesn't|does not)\s+like|is allergic to|lives in|works (?:at|for)|works as|is (?:a|an)\s+(?=" + _JOB
    + r"\b)|is (?=vegetarian|vegan)|is from)\s*",
    re.IGNORECASE,
)
_INSTRUCTION = re.compile(
    r"^(?:(?:and|also|so|oh|ok|okay|one more thing)\s*,?\s+)*(?:(?:please|pls|plz|kindly)\s*,?\s+)?"
    r"(?:(?:from now on|going forward|in future|in the future)\s*,?\s+)?(?:(?:please|pls)\s+)?"
    r"(?:(?:could|can|would|will)\s+you\s+(?:please\s+)?|i(?:'d| would)\s+like\s+you\s+to\s+|"
    r"i\s+(?:want|need)\s+you\s+to\s+)?"
    r"(?P<imp>(?:don't|do not|never|always|stop|avoid|keep|use|reply|respond|answer|write|talk|speak|be|give|make|"
    r"format|include|add|skip|limit|no more)\b.*)$",
    re.IGNORECASE,
)
# A one-off task ("write a short poem") is not a standing instruction; these words make it one.
_STANDING = re.compile(
    r"\b(?:always|never|from now on|going forward|in future|anymore|any more|don't|do not|stop|keep|no more|"
    r"answers|responses|replies|respond|messages|your|talk|speak|use|avoid|be)\b", re.IGNORECASE)  # plurals: "a short message" is one task
_LANGUAGES = ("english", "spanish", "french", "german", "italian", "portuguese", "chinese", "mandarin", "japanese",
              "korean", "dutch", "russian", "arabic", "hindi", "polish", "swedish", "turkish", "greek")
_STYLE = (  # (the profile field an instruction sets, the words that make it about style)
    ("language", re.compile(r"\bin\s+(?:" + "|".join(_LANGUAGES) + r")\b", re.IGNORECASE)),
    ("verbosity", re.compile(r"\b(?:short|shorter|brief|briefer|concise|succinct|long|longer|detailed|"
                             r"verbose|length|wordy|rambling)\b", re.IGNORECASE)),
    ("formality", re.compile(r"\b(?:formal|informal|casual|polite|professional|slang)\b", re.IGNORECASE)),
    ("tone", re.compile(r"\b(?:emojis?|emoticons?|exclamation|tone|jokes?|sarcasm|friendly|cheerful)\b",
                        re.IGNORECASE)),
    ("instruction", re.compile(r"\b(?:answers?|responses?|repl(?:y|ies)|messages?|bullet(?:\s+points?)?|"
                               r"lists?|markdown|format(?:ting)?|jargon|plain|caps|capital letters|"
                               r"sentences?|paragraphs?|examples?|code|sources|references|headings?|tables?|"
                               r"units|metric|imperial|celsius|fahrenheit)\b", re.IGNORECASE)),
)


def _possession_excluded(raw: str) -> bool:
    words = [w.lower() for w in _words(raw)]
    return len(words) < 2 or bool(set(words[1:3]) & _NOT_POSSESSIONS) or bool(
        re.search(r"\b(?:named|called)\b|allerg", raw, re.IGNORECASE))


def _statement(rule: _Rule, m: re.Match[str], sentence: str, speaker: str) -> _Found | None:
    """The fact one rule match states, or None when its object is unusable."""
    end = _clause_end(sentence, m.end())
    if "o" in rule.pattern.groupindex:
        raw = m["o"]
        if rule.predicate == "occupation" and set(_words(raw.lower())[:-1]) & _NOT_A_JOB:
            return None
    else:
        raw = sentence[m.end():end]
    if rule.predicate == "has" and _possession_excluded(raw):
        return None
    if rule.predicate == "prefers":
        raw = re.split(r"\s+(?:to|over|rather than|instead of)\s+", raw)[0]
    obj = _tidy_object(raw, speaker, cut=rule.cut, proper=rule.entity_type is not None)
    if obj is None:
        return None
    if rule.predicate == "name":
        if obj.lower() in _NOT_NAMES:
            return None
        obj = obj[0].upper() + obj[1:]
    predicate = rule.predicate if isinstance(rule.predicate, str) else rule.predicate(m)
    return _Found(
        predicate, rule.kind, obj, m.start(), end, confidence=rule.confidence, dated_from_message=rule.plan,
        text=rule.template.format(s=speaker, o=obj) if rule.template else None,
        entity=(obj, rule.entity_type) if rule.entity_type else None,
    )


def _statements(sentence: str, event: Event) -> Iterator[_Found]:
    """First-person statements: one per rule match that is asserted and has a usable object."""
    for rule in _STATEMENTS:
        for m in rule.pattern.finditer(sentence):
            if _asserted(sentence, m.start()) and (found := _statement(rule, m, sentence, event.speaker)):
                yield found
    for m in _WILL.finditer(sentence):  # "I'll ..." is a plan only with a date: "I'll call you" is not
        end = _clause_end(sentence, m.end())
        rest = sentence[m.end():end]
        when = resolve_relative_dates(rest, event.time).start
        ahead = when.date() >= event.time.date() if when else bool(_DATE_WORD.search(rest))
        if ahead and _asserted(sentence, m.start()) and (obj := _tidy_object(rest, event.speaker)):
            yield _Found("plans", "plan", obj, m.start(), end, confidence=0.85, dated_from_message=True)


def _relation_mentions(sentence: str) -> Iterator[tuple[re.Match[str], str, str]]:
    """(match, relation, name) for 'my sister Nadia', 'I have a dog named Biscuit', 'Nadia is my sister'."""
    for pattern in _RELATIONSHIP_PATTERNS:
        for m in pattern.finditer(sentence):
            name = _proper_name(m["name"])
            if m.groupdict().get("comma") and name and not re.match(r"\s*(?:[,.!?;)]|$)", sentence[m.start("name")
                                                                                            + len(name):]):
                continue  # "my girlfriend, Toby and I": a list, not "my girlfriend, Toby, ..."
            if name and _asserted(sentence, m.start()):
                yield m, re.sub(r"\s+", " ", m["rel"].lower()), name


def _relationships(sentence: str, speaker: str) -> Iterator[_Found]:
    for m, rel, name in _relation_mentions(sentence):
        yield _Found(
            _snake(_RELATION_PREDICATE.get(rel, rel)), "relationship", name, m.start(), m.end(),
            text=f"{name} is {speaker}'s {rel}", entity=(name, RELATIONS[rel]), alias=f"{speaker}'s {rel}",
        )


def _third_party_predicate(verb: str) -> tuple[str, FactKind]:
    verb = verb.lower()
    if re.match(r"hates|dislikes|detests|can't|cannot|doesn't|does not", verb):
        return "dislikes", "preference"
    if re.match(r"loves|likes|enjoys|adores", verb):
        return "likes", "preference"
    for start, predicate in (("is allergic", "allergic_to"), ("lives", "lives_in"), ("works as", "works_as"),
                             ("works", "works_at"), ("is from", "from"), ("is a", "occupation")):
        if verb.startswith(start):
            return predicate, "attribute"
    return "diet", "attribute"


def _third_party(sentence: str, speaker: str, names: dict[tuple[str, str], str]) -> Iterator[_Found]:
    """'my sister loves horror films': a fact about the sister (by name when known), never the speaker."""
    for m in _THIRD_PARTY.finditer(sentence):
        if not _asserted(sentence, m.start()):
            continue
        rel = re.sub(r"\s+", " ", m["rel"].lower())
        called = m["called"] if m["called"] and m["called"].lower() not in _NOT_NAMES else None
        name = called or names.get((speaker, rel))
        predicate, kind = _third_party_predicate(m["verb"])
        end = _clause_end(sentence, m.end())
        raw = sentence[m.end():end]
        proper = predicate in ("lives_in", "works_at", "from")
        obj = _tidy_object(raw, speaker, cut=proper or predicate == "occupation", proper=proper)
        if obj is None:
            continue
        if predicate == "diet":
            obj = _words(obj)[0]
        text = _third_person(sentence[m.start():end], speaker)
        if name and name not in text:
            text = text.replace(f"{speaker}'s {m['rel']}", f"{speaker}'s {m['rel']} {name}", 1)
        yield _Found(predicate, kind, obj, m.start(), end, subject=name or f"{speaker}'s {rel}", text=text,
                     confidence=0.8)


_STANDING_OPENER = re.compile(r"(?i)^((?:please\s+)?(?:from now on|going forward|in (?:the )?future))\s*,\s*")


def _instructions(sentence: str, speaker: str) -> Iterator[_Found]:
    """Standing imperatives about how the assistant should answer ("please keep answers short")."""
    # "From now on, answer in French": the standing opener is part of the clause after its comma.
    sentence = _STANDING_OPENER.sub(r"\1 ", sentence)
    for clause in re.split(r"[,;]\s*", sentence.rstrip(".!?")):
        m = _INSTRUCTION.match(clause)
        field = next((f for f, words in _STYLE if m and words.search(m["imp"])), None)
        if not m or not field or not _STANDING.search(clause):
            continue
        imp = _pronouns(re.sub(r"(?i)\byour\s+|,?\s*\b(?:from now on|going forward|in (?:the )?future)\b", "",
                               m["imp"]), speaker)
        imp = imp[0].lower() + imp[1:]
        negative = re.match(r"(?i)(don't|do not|never)\s+", imp)
        lead = ("never to" if negative[1].lower() == "never" else "not to") if negative else "to"
        rest = re.sub(r"(?i)\byou\b", "it", imp[negative.end():] if negative else imp)
        text = f"{speaker} asked the assistant {lead} {rest}"
        start = sentence.find(clause)
        yield _Found(field, "instruction", imp[:200], start, start + len(clause), text=text)


def _names_by_relation(events: Sequence[Event]) -> dict[tuple[str, str], str]:
    """Who each speaker's 'my sister' is, from anywhere in the batch ('my sister Nadia' said earlier)."""
    names: dict[tuple[str, str], str] = {}
    for event in events:
        if event.role in ("user", "other"):
            for sentence, _ in _sentences(event.text):
                for _, rel, name in _relation_mentions(sentence):
                    names.setdefault((event.speaker, rel), name)
    return names


def _to_candidate(found: _Found, sentence: str, event: Event) -> CandidateFact:
    text = found.text or _third_person(sentence[found.start:found.end], event.speaker)
    dated = resolve_relative_dates(text.rstrip(" .!,;:") + ".", event.time)
    obj = resolve_relative_dates(found.obj, event.time).text
    valid_from = event.time if found.dated_from_message else dated.start or event.time
    return CandidateFact(
        text=dated.text, fact_kind=found.kind, subject=found.subject or event.speaker, predicate=found.predicate,
        object=obj[:200], confidence=found.confidence, sources=[event.id], valid_from=valid_from,
        origin="explicit",
    )


def extract_explicit(events: Sequence[Event]) -> tuple[list[CandidateFact], list[CandidateEntity]]:
    """Facts and entities stated outright by user or other speakers; assistant messages are ignored."""
    names = _names_by_relation(events)
    facts: dict[tuple[str, str, str], CandidateFact] = {}
    entities: dict[str, CandidateEntity] = {}
    for event in events:
        if event.role not in ("user", "other"):
            continue
        for sentence, question in _sentences(own_words(event.text)):
            # How the assistant should answer is the user's say alone: another speaker in the
            # conversation may state facts about themself, never standing instructions.
            found = [*_instructions(sentence, event.speaker)] if event.role == "user" else []
            if not question:
                found += [*_relationships(sentence, event.speaker), *_statements(sentence, event),
                          *_third_party(sentence, event.speaker, names)]
            for item in found:
                fact = _to_candidate(item, sentence, event)
                key = (fact.subject or "", fact.predicate or "", (fact.object or "").lower())
                if key in facts:
                    facts[key].sources = sorted({*facts[key].sources, event.id})
                else:
                    facts[key] = fact
                if item.entity:
                    name, entity_type = item.entity
                    entity = entities.setdefault(name.lower(), CandidateEntity(name=name, entity_type=entity_type))
                    entity.sources = sorted({*entity.sources, event.id})
                    if item.alias and item.alias not in entity.aliases:
                        entity.aliases.append(item.alias)
    return list(facts.values()), list(entities.values())
