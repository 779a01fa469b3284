"""Extractive questions from prose, by rules: what one sentence states, asked back.

Each rule reads one sentence and gives ``(question, answer, kind)``, the answer a span of the
sentence, so the passage the question came from answers it:

* ``definition``: "severe acute respiratory syndrome (SARS)" -> "What does SARS stand for?"
  (the abbreviation's letters are checked against the words' initials);
* ``copula``: "The incubation period was 5.2 days" -> "What was the incubation period?"; a
  predicate that is a verb phrase ("was conducted in ...", "is likely to ...") or a subject that
  names nothing outside its passage ("this study", "our results") gives no question;
* ``agent``: "Tuberculosis is caused by Mycobacterium tuberculosis" -> "What is tuberculosis
  caused by?";
* ``examples``: "respiratory viruses such as RSV and influenza" -> "What are examples of
  respiratory viruses?";
* ``quantity``: a number with its unit in a short sentence -> the sentence as a cloze question
  ("... for what?");
* ``name``: a name-like token inside a sentence (a gene, a strain, an acronym with digits:
  "HCoV-OC43", "ACE2") -> the sentence as a cloze question.

``kind`` lets the builder balance answer types: prose is full of numbers, which are the easiest
spans for rules to find, and an adapter trained mostly on numbers learns to answer with one
(measured on COVID-QA: benchmarks/eval/RESULTS.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

CLOZE_KINDS = ("quantity", "name")  # a sentence with a blank, rather than a question a person would ask
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])|\n+")
_CITATION = re.compile(r"\s*\[\d+(?:[,\u2013\u2014-]\s*\d+)*\]")
_METADATA = re.compile(r"^(?:#|[A-Z][A-Za-z ]{1,20}:\s|https?://)")  # headings, "Authors: ...", "DOI: ...", links
_MAX_SENTENCE_WORDS = 40
_MAX_CLOZE_WORDS = 40

_COPULA = re.compile(
    r"^(?P<subject>(?:The|A|An)\s[^,;:()]{3,90}?)\s+"
    r"(?P<verb>is|was|are|were|has been|have been|remained|ranged from|reached|totalled|totaled|amounted to)\s+"
    r"(?P<value>[^,;()]{1,70})"
)
_VAGUE_SUBJECT = re.compile(r"\b(?:this|these|that|those|our|its|their|his|her|such|same|former|latter|above|following)\b",
                            re.IGNORECASE)
# A predicate opening with one of these is a verb phrase or an adjective ("was conducted in", "is likely to",
# "were similar"), not a value the subject has.
_NOT_A_VALUE = set("""
also not still then thus often usually always never now already likely unlikely able unable due known shown found
used given taken made done seen based similar different higher lower more less greater larger smaller better worse
associated related responsible important essential necessary possible required needed available present absent
detected identified observed reported considered limited expected estimated thought believed suggested proposed
as in on at by to from with for than that this these those there here which who when where because if
drawn grown written chosen held kept led left met paid run set spent split sent built brought thought caught taught
told sold won put cut read
""".split())
_AGENT = re.compile(
    r"(?:^|,\s)(?P<subject>(?:[A-Z][\w-]*|[Tt]he\s[\w-]+)(?:\s[\w-]+){0,5}?)\s+(?P<be>is|are|was|were)\s+"
    r"(?:mainly\s|mostly\s|primarily\s|largely\s)?(?P<participle>caused|induced|mediated|transmitted|encoded|produced|"
    r"regulated|recognized|characterized|triggered|spread|carried)\s+by\s+(?P<agent>[^,;()]{2,60})"
)
_OPENERS = set("since because although though while when whereas if as thus however therefore moreover furthermore also "
               "here in on at for with by from of to after before during".split())  # not the start of a subject
_EXAMPLES = re.compile(r"(?P<head>(?:[A-Za-z][\w-]+\s){0,2}[A-Za-z][\w-]+s),?\s+such as\s+(?P<items>[^;.()]{3,80}?"
                       r"\s(?:and|or)\s[^;.(),]{2,40})")
_ITEMS_END = re.compile(r"\s+(?:in|at|on|from|with|during|for|to|by|were|was|are|is|have|has)\s+")
_HEAD_STOP = set("the a an of and or in on at for with by to from many several various other some all most".split())
_CLAUSE_END = re.compile(r"\s+(?:and|which|that|but|while|whereas|because|although|when|as|than|in order)\s+")
_ABBREVIATION = re.compile(r"(?P<long>(?:[A-Za-z][\w'-]*\s+){1,8}?[A-Za-z][\w'-]*)\s+\((?P<short>[A-Z][A-Za-z0-9-]{1,11})\)")
QUANTITY = re.compile(
    r"(?<![\w.-])(?:[$£€]\s?)?\d[\d,]*(?:\.\d+)?\s?(?:%|percent|per cent|million|billion|thousand|m\b|bn\b|k\b|"
    r"days?|weeks?|months?|years?|hours?|minutes?|kb|nm|Nm|mm|cm|km|kg|g\b|mg|ml|kW|kWh|MW|(?<=\s)V\b|(?<=\s)A\b|bar|°C|patients|"
    r"cases|deaths|participants|samples)"
)
# Name-like tokens: letters with digits (ACE2, IFITM5, H1N1), hyphenated codes (HCoV-OC43), mixed case (SARS-CoV).
_NAME = re.compile(r"(?<![\w-])(?=[\w-]*[A-Z])(?=[\w-]*(?:\d|[a-z][A-Z]|[A-Z]-))(?=[\w-]*[A-Za-z]{2})[A-Za-z][\w]*(?:-[\w]+)*(?![\w-])")
_REFERENCE = re.compile(r"(?:Table|Tables|Figure|Figures|Fig|Figs|File|Supplementary|Appendix|Section|Panel)\.?\s*$", re.IGNORECASE)


def sentences(text: str) -> Iterator[str]:
    """Sentences of a chunk worth asking about: no headings or metadata lines, citations removed."""
    for raw in _SENTENCE.split(text):
        sentence = " ".join(_CITATION.sub("", raw).split())
        if len(sentence.split()) >= 5 and len(sentence.split()) <= _MAX_SENTENCE_WORDS and not _METADATA.match(sentence):
            yield sentence


def _phrase(text: str, max_words: int = 8) -> str:
    """``text`` up to the next clause (``and which ...``), at most ``max_words`` words."""
    value = _CLAUSE_END.split(text)[0].strip().rstrip(".")
    return " ".join(value.split()[:max_words])


def _lower_first(text: str) -> str:
    """"The incubation period" -> "the incubation period"; an acronym ("HCoV infections") keeps its case."""
    first = text.split()[0]
    return text if len(first) > 1 and sum(c.isupper() for c in first) > 1 else text[0].lower() + text[1:]


def _expansion(words: list[str], short: str) -> str | None:
    """The words before "(``short``)" that it abbreviates, by Schwartz & Hearst's (2003) rule: every
    letter or digit of ``short``, right to left, is found in the words in order, the first one
    opening a word ("severe acute respiratory syndrome coronavirus" for SARS-CoV)."""
    text = " ".join(words)
    where = len(text) - 1
    wanted = [c.lower() for c in short if c.isalnum()]
    for position in range(len(wanted) - 1, -1, -1):
        while where >= 0 and (text[where].lower() != wanted[position]
                              or (position == 0 and where > 0 and text[where - 1].isalnum())):
            where -= 1
        if where < 0:
            return None
        where -= 1
    expansion = text[text.rfind(" ", 0, where + 1) + 1:]
    count = len(expansion.split())
    return expansion if 1 < count <= min(len(wanted) + 5, 2 * len(wanted)) else None


def definition_questions(sentence: str) -> Iterator[tuple[str, str, str]]:
    for match in _ABBREVIATION.finditer(sentence):
        expansion = _expansion(match.group("long").split(), match.group("short"))
        if expansion:
            yield f"What does {match.group('short')} stand for?", expansion, "definition"


def copula_question(sentence: str) -> tuple[str, str, str] | None:
    match = _COPULA.match(sentence)
    if not match or _VAGUE_SUBJECT.search(match.group("subject")):
        return None
    value = _phrase(match.group("value"))
    first = value.split()[0].lower().strip(":;,.") if value else ""
    if not first or first in _NOT_A_VALUE or (first.endswith(("ed", "ly")) and not first[:1].isdigit()):
        return None
    verb = match.group("verb")
    subject = _lower_first(match.group("subject"))
    if verb not in ("is", "was", "are", "were"):  # "reached", "ranged from", ...: ask what it was
        verb = "were" if subject.split()[-1].endswith("s") else "was"
    return f"What {verb} {subject}?", value, "copula"


def agent_question(sentence: str) -> tuple[str, str, str] | None:
    match = _AGENT.search(sentence)
    if not match or _VAGUE_SUBJECT.search(match.group("subject")) or match.group("subject").split()[0].lower() in _OPENERS:
        return None
    agent = _phrase(match.group("agent"), 10)
    if not agent:
        return None
    subject = _lower_first(match.group("subject"))
    return f"What {match.group('be')} {subject} {match.group('participle')} by?", agent, "agent"


def examples_question(sentence: str) -> tuple[str, str, str] | None:
    match = _EXAMPLES.search(sentence)
    if not match:
        return None
    head = match.group("head").split()[-2:]  # "carry respiratory viruses": the noun and one word before it
    while head and head[0].lower() in _HEAD_STOP:
        head = head[1:]
    items = _ITEMS_END.split(match.group("items"))[0].strip().rstrip(".")
    if not head or len(items.split()) > 12:
        return None
    return f"What are examples of {' '.join(head).lower() if not head[0][:2].isupper() else ' '.join(head)}?", items, "examples"


def _cloze(sentence: str, start: int, end: int, wh: str) -> str:
    question = (sentence[:start] + wh + sentence[end:]).rstrip(" .;:") + "?"
    return question[0].upper() + question[1:]


def cloze_question(sentence: str) -> tuple[str, str, str] | None:
    """A quantity, else a name-like token, asked as the sentence with the span replaced by "what"."""
    if len(sentence.split()) > _MAX_CLOZE_WORDS:
        return None
    quantity = QUANTITY.search(sentence)
    if quantity:
        return _cloze(sentence, quantity.start(), quantity.end(), "what"), quantity.group().strip(), "quantity"
    for name in _NAME.finditer(sentence):
        # a name opening the sentence leaves a question with no subject; "Table S3" is a reference, not a name
        if name.start() > 0 and not _REFERENCE.search(sentence[: name.start()]):
            return _cloze(sentence, name.start(), name.end(), "what"), name.group(), "name"
    return None


def prose_questions(text: str) -> list[tuple[str, str, str]]:
    """Every rule-made ``(question, answer, kind)`` of a prose chunk, in sentence order; one per
    sentence from the first rule that fires (abbreviations are asked besides)."""
    found = []
    for sentence in sentences(text):
        found += definition_questions(sentence)
        for rule in (copula_question, agent_question, examples_question, cloze_question):
            made = rule(sentence)
            if made:
                found.append(made)
                break
    return found
