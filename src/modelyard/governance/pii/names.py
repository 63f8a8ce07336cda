"""Person names without a statistical model: a list of given names plus structural cues.

Found as a person:

* a capitalised given name from ``given_names.txt`` followed by one or two capitalised
  family names (particles like *van der*, *de*, *von* allowed); the given name alone unless
  it is also a common word (*May*, *Will*, *Rose*);
* any capitalised name (one to three words, in the list or not) after a *cue*: an honorific
  (Mr, Ms, Dr, Frau, Herr, Mme, Sra., …), a self-introduction ("my name is", "ich heiße",
  "je m'appelle", "me llamo", …; "I am"/"ich bin" only before two capitalised words), a
  salutation ("Dear X", "Hi X", "Liebe X", "Bonjour X", …), "Signed:", a sign-off line
  ("Best regards," / "Mit freundlichen Grüßen" / "Cordialement" … then the name alone on the
  next line), a signature delimiter ("--" line), or a name directly before its own e-mail
  address ("Ann Example <ann@example.com>").

Capitalised words that follow a cue but are not names ("Dear Customer", "Hi Team",
"Best regards, The Support Team") are kept out by a stop list. Each rule looks at most
:data:`LOOKBEHIND` characters to the left of a name, and to its right only as far as the
end of its line or an e-mail address right after it (the streaming redactor relies on this).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from importlib import resources

from modelyard.governance.pii.entities import Entity

LOOKBEHIND = 48

_UP = "A-ZÀ-ÖØ-ÞĀĂĄĆČĎĐĒĘĚĞĪİŁŃŇŌŐŒŘŚŞŠŢŤŪŮŰŹŻŽ"
_LOW = "a-zß-öø-ÿāăąćčďđēęěğīıłńňōőœřśşšţťūůűźżž"
WORD = rf"(?:[{_UP}]['\u2019]|Ma?c)?[{_UP}][{_LOW}]+(?:[-'\u2019][{_UP}]?[{_LOW}]+)*"
PARTICLE = r"(?:van der|van den|van de|van|von der|von|de la|de|del|della|di|da|du|le|la|ten|ter)"
_GAP = r"[ \t]+"
_NEXT = rf"(?:{_GAP}(?:{PARTICLE}{_GAP})?{WORD})"
_NAME = rf"{WORD}{_NEXT}{{0,2}}"
_NAME2 = rf"{WORD}{_NEXT}{{1,2}}"
_START = r"(?<![\w'\u2019-])"

_HONORIFICS = (
    "Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Dame|Herr|Frau|Mme|Mlle|Madame|Monsieur|Sr|Sra|Srta|"
    "Señor|Señora|Sig|Sig\\.ra|Signor|Signora|Dott|Dott\\.ssa|Dhr|Mevr|Mevrouw|Meneer|Pan|Pani|Fru"
)
_TITLE = re.compile(rf"{_START}(?:{_HONORIFICS})\.?{_GAP}((?:{PARTICLE}{_GAP})?{_NAME})")
_CUE = re.compile(
    rf"{_START}(?i:my name is|my name's|my name:|full name:|name:|signed(?: by)?|dear|attn|"
    r"attention|mein name ist|ich heiße|ich heisse|je m'appelle|je m\u2019appelle|me llamo|"
    r"mi chiamo|mijn naam is|ik heet|nazywam się|mam na imię|jag heter|hi|hello|hey|hallo|"
    r"bonjour|hola|ciao|hej|hoi|cher|chère|liebe|lieber|sehr geehrte|sehr geehrter|"
    r"estimado|estimada|querido|querida|caro|cara|gentile|beste|drogi|droga|szanowny|"
    rf"szanowna|kära)[ \t]*[:,]?{_GAP}({_NAME})"
)
_WEAK_CUE = re.compile(
    rf"{_START}(?i:i am|i'm|i\u2019m|ich bin|je suis|soy|sono|ik ben|jestem|jag är)"
    rf"{_GAP}({_NAME2})"
)
_SIGN_OFF = re.compile(
    rf"{_START}(?i:regards|best regards|kind regards|warm regards|best wishes|best|cheers|"
    r"thanks|thank you|many thanks|sincerely|yours sincerely|yours truly|yours faithfully|"
    r"yours|mit freundlichen grüßen|mit freundlichen grüssen|freundliche grüße|viele grüße|"
    r"beste grüße|liebe grüße|grüße|cordialement|bien à vous|bien cordialement|saludos|"
    r"atentamente|un saludo|un saluto|cordiali saluti|distinti saluti|saluti|"
    r"met vriendelijke groet|vriendelijke groeten|groeten|groet|pozdrawiam|z poważaniem|"
    r"med vänliga hälsningar|vänliga hälsningar|hälsningar|mvh)[ \t]*[,.!:]?[ \t]*\r?\n"
    rf"(?:[ \t]*\r?\n)?[ \t]*({_NAME})(?=[ \t]*(?:\r?\n|$|[,|]))"
)
_SIGNATURE = re.compile(rf"(?m:^)--[ \t]?\r?\n[ \t]*({_NAME})(?=[ \t]*(?:\r?\n|$|[,|]))")
_BEFORE_EMAIL = re.compile(
    rf"{_START}({_NAME2})(?=[ \t]*[<(\[][ \t]*(?:mailto:)?[A-Za-z0-9._%+-]+@)"
)
_CANDIDATE = re.compile(rf"{_START}(?=({WORD})({_NEXT}{{1,2}})?)")  # at every word: overlapping

_STOP_WORDS = """
    The A An This That These Those It Its I We You They He She Our Your My His Her Their All
    Everyone Everybody Team Teams Customer Customers Client Clients Sir Sirs Madam Friends
    Friend Colleagues Colleague Support Service Services Sales Admin Administrator Manager
    Hiring Valued Member Members User Users Partner Partners Reader Readers There World
    Folks Guys Ladies Gentlemen Staff Company Group Department Office Bank University Thanks
    Thank Regards Best Kind Warm Cheers Sincerely Yours Hello Hi Dear Not Happy Sorry Glad
    Here Back Available Interested Looking Writing Just Please Also Again Now Today Monday
    Tuesday Wednesday Thursday Friday Saturday Sunday January February March April June July
    August September October November December English French German Spanish Italian Dutch
    Polish Swedish American British European Security Privacy Mr Mrs Ms Mx Miss Dr Prof Herr
    Frau Mme Mlle Madame Monsieur Messieurs Mesdames Sr Sra Señor Señora Señores Dhr Mevr
    Mevrouw Meneer Pan Pani Fru Signor Signora Signore Kunde Kundin Kunden Kundenservice
    Kundendienst Damen Herren Ihr Ihre Dein Deine Euer Eure Zusammen Alle Leute Kollegen
    Kolleginnen Grüße Gruß Tous Toutes Cliente Clientes Todos Todas Amici Tutti Allemaal
    Klant Klanten Heren Dames Wszyscy Państwo Alla Kund Kunder Name Email Mail Phone Tel
    Address Subject From To Cc Date Re Fwd Attached Attachment Thanks Ok Okay
"""
STOP = frozenset(_STOP_WORDS.split())
_AMBIGUOUS_WORDS = """
    May June April August Will Mark Rose Grace Faith Hope Joy Bill Frank Art Pat Sunny
    Summer Victoria Florence Paris Lane Dean Page Angel Sky Ray Jack Major Rich Iris Lily
    Amber Ruby Jade Holly Ivy Pearl Dawn Eve Sandy Chase Hunter Drew Gene Guy Lou Sue Kim
    Lee Max Sam Marine Marie-Claire Christian Paz Luz Dolores Consuelo Rosa Bella Stella
    Luna Don
"""
_AMBIGUOUS = frozenset(_AMBIGUOUS_WORDS.split())


@cache
def given_names() -> frozenset[str]:
    text = resources.files("modelyard.governance.pii").joinpath("given_names.txt").read_text()
    return frozenset(
        w for line in text.splitlines() if not line.startswith("#") for w in line.split()
    )


def _trimmed(
    text: str, start: int, end: int, minimum: int = 1, *, after_cue: bool = True
) -> Entity | None:
    """The name between start and end without stop words at its end (and, when it does not
    follow a cue, at its start); None if fewer than ``minimum`` capitalised words remain, if
    a stop word is left inside, or if a cue is followed by a stop word ("Dear Customer",
    "Thanks, The Billing Team")."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    if after_cue and words and text[words[0][0] : words[0][1]] in STOP:
        return None
    while words and text[words[0][0] : words[0][1]] in STOP:
        words.pop(0)
    while words and text[words[-1][0] : words[-1][1]] in STOP:
        words.pop()
    capitalised = [w for w in words if text[w[0]].isupper()]
    if len(capitalised) < minimum or any(text[a:b] in STOP for a, b in words):
        return None
    first, last = words[0][0], words[-1][1]
    return Entity("PERSON", first, last, text[first:last])


def persons(text: str) -> Iterator[Entity]:
    for rule in (_TITLE, _CUE, _SIGN_OFF, _SIGNATURE):
        for m in rule.finditer(text):
            found = _trimmed(text, m.start(1), m.end(1))
            if found is not None:
                yield found
    for m in _WEAK_CUE.finditer(text):
        found = _trimmed(text, m.start(1), m.end(1), minimum=2)
        if found is not None:
            yield found
    for m in _BEFORE_EMAIL.finditer(text):
        found = _trimmed(text, m.start(1), m.end(1), minimum=2, after_cue=False)
        if found is not None:
            yield found
    yield from _listed(text)


def _listed(text: str) -> Iterator[Entity]:
    names = given_names()
    for m in _CANDIDATE.finditer(text):
        first = m.group(1)
        if first not in names:
            continue
        if m.group(2):
            found = _trimmed(text, m.start(1), m.end(2), after_cue=False)
            if found is not None and found.start == m.start(1):
                yield found
                continue
        if first not in _AMBIGUOUS:
            yield Entity("PERSON", m.start(1), m.end(1), first)
