"""Pure text understanding of a patient's SMS reply: what they want, what, when, who.

``understand(text, now, location)`` returns an :class:`Understanding`. It is pure (no
network, no database, no clock): the conversation machine calls it with the message, the
moment it arrived and the location whose catalogue and hours give the words meaning.

How it reads a message:

1. **Fold.** Accents, apostrophes, emoji and case are removed ("Bótox" -> "botox", "don't"
   -> "dont", "p.m." -> "pm"), so every rule is written once, in plain ASCII. A thumbs-up
   reads as "ok"; phone numbers are masked so they never become hours or choices.
2. **Carrier keywords** are whole messages only, as Twilio treats them: STOP, STOPALL,
   UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT (and Spanish ALTO, PARAR) are ``stop``;
   START, UNSTOP, YES are ``start``; HELP, INFO (AYUDA) are ``help``. The word lists come
   from :mod:`ringback.messaging.keywords`. Opting out is read generously (edge emoji and
   punctuation ignored, plain language such as "stop texting me" or "remove my number",
   a STOP standing as its own sentence); opting in strictly (only the bare keyword, so
   "YES 👍" or "yes please" is ``affirm``).
3. **Intents** are regular expressions over the folded words, several per message, ordered
   by urgency (:data:`INTENT_ORDER`). ``urgent`` (a symptom after a treatment, English or
   Spanish) is tuned for recall: it is never fuzzy, and only an immediate negation ("no
   fever") or a hypothetical question with no sign it is happening ("will there be
   swelling?") stops it. Besides the issue's intents there are ``affirm`` ("yes please",
   "sure", "si"), ``deny`` ("no thanks", "nope") and ``thanks`` (a message that only says
   thank you, "see you then"); a whole-message YES stays ``start``.
4. **Treatments** come from the location's catalogue: names and aliases as phrases (all
   words must appear, in order), a built-in table of Spanish and common synonyms that
   resolve to the catalogue ("relleno de labios" -> the service with alias "lip filler"),
   plurals, and typos at edit distance 1 (transpositions count once) for catalogue words
   of five letters or more, with the same first letter and never for a listed ordinary
   word ("racial", "filter", "later"). A few words need context ("facial swelling" and
   "to consult my husband" are not treatments).
5. **When** is parsed by :mod:`ringback.conversation.understand_time`; its docstring gives
   the window rules. Vague answers set ``timing``: asap, flexible or unsure (the first one
   used wins), alongside any windows.
6. **Patient** is "new" or "returning" from phrases ("first time", "been before", "patient
   of Dr. Lee"); a negated "new" ("not my first time") is returning, and when both kinds
   appear the patient is returning. ``known_patient=True`` makes it "returning".
7. **Language** is "es" when Spanish words (or accents, ñ, ¿, ¡) outnumber English ones.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Literal

from ringback.config import Location
from ringback.conversation.understand_time import (
    TimeWindow,
    extract_times,
    vague_timing,
)
from ringback.messaging.keywords import HELP_WORDS, START_WORDS, STOP_WORDS

__all__ = ["ASKED", "INTENT_ORDER", "Asked", "TimeWindow", "Understanding", "understand"]

Timing = Literal["asap", "flexible", "unsure"]
# The question the bot asked last, which a short reply ("yes", "no", "new") answers.
Asked = Literal["treatment", "time", "patient", "appointment", "confirm", "waitlist"]
ASKED: tuple[Asked, ...] = ("treatment", "time", "patient", "appointment", "confirm", "waitlist")
Patient = Literal["new", "returning"]
Language = Literal["en", "es"]

INTENT_ORDER: tuple[str, ...] = (
    "urgent",
    "stop",
    "wrong_number",
    "human",
    "cancel",
    "reschedule",
    "late",
    "medical_question",
    "price_question",
    "help",
    "start",
    "choice",
    "decline",
    "affirm",
    "deny",
    "thanks",
    "unsure",
    "question",
)


@dataclass(frozen=True, slots=True)
class Understanding:
    """What one patient message says, as far as plain rules can tell."""

    intents: tuple[str, ...] = ()
    treatments: tuple[str, ...] = ()
    times: tuple[TimeWindow, ...] = ()
    timing: Timing | None = None
    patient: Patient | None = None
    choice: int | None = None
    language: Language = "en"

    def to_json(self) -> dict[str, object]:
        return {
            "intents": list(self.intents),
            "treatments": list(self.treatments),
            "times": [window.to_json() for window in self.times],
            "timing": self.timing,
            "patient": self.patient,
            "choice": self.choice,
            "language": self.language,
        }


# --- folding ------------------------------------------------------------------------------

_SMS_NUMBER_WORDS = (
    (re.compile(r"\b2(?:moro+w?|morrow|morow|mrw|mrow|mro|mor)\b"), "tomorrow"),
    (re.compile(r"\b2day\b"), "today"),
    (re.compile(r"\b2(?:nite|night|nyt)\b"), "tonight"),
    (re.compile(r"\bb4\b"), "before"),
)
# "310-555-0199", "(310) 555 0199", "+13105550199": never hours, dates or choices
_PHONE_NUMBER = re.compile(r"\+?\(?\b\d{3}\)?[-. ]?\d{3}[-. ]\d{4}\b|\+?\b\d{10,11}\b")
_MERIDIEM = re.compile(r"(?<![a-z])([ap])\.\s?m\b\.?")
_NOT_TEXT = re.compile(r"[^a-z0-9:/#@$&+?!.,;\-\s]+")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9]+")
_PLAIN_TOKEN = re.compile(r"[a-z0-9]+(?::[0-9]{2})?|[#$?]")
_OK_EMOJI = re.compile("[\U0001f44d\U0001f44c\u2705]+")  # thumbs up, OK hand, check mark


def _fold(text: str) -> str:
    """Lower case ASCII with accents, apostrophes and emoji removed; punctuation kept."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = _OK_EMOJI.sub(" ok ", text)
    text = _PHONE_NUMBER.sub(" phonenumber ", text)
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_ish = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    folded = ascii_ish.replace("'", "").replace("\n", " . ")
    folded = _MERIDIEM.sub(r"\1m", folded)
    for pattern, replacement in _SMS_NUMBER_WORDS:
        folded = pattern.sub(replacement, folded)
    folded = _NOT_TEXT.sub(" ", folded)
    return _SPACES.sub(" ", folded).strip()


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- language -----------------------------------------------------------------------------

_SPANISH_WORDS = _word_set(
    """quiero hola para por favor gracias cita tarde manana semana proxima proximo que es una
    con necesito cancelar cambiar buenas buenos dias noche lunes martes miercoles jueves
    viernes sabado domingo hoy primera vez soy paciente hablar alguien puedo tengo hinchazon
    dolor fiebre ampollas respirar alto parar cuanto cuesta precio relleno labios el los las
    del de y pero si estoy esta como cuando donde ya otra nuevo nueva llamar llamen ayuda
    mas muy bien lo le se su al yo tu usted ustedes hay puede pueden despues antes cara
    labio hinchado hinchada fuerte seguro embarazada lactancia amamantando efectos
    secundarios nunca ido mande manden mensajes escriban quitar lista numero equivocado
    llame quisiera hacer tiene tienen ojo ojos veo duele mucho poco unos unas mi mis
    disponible horario reprogramar depilacion limpieza consulta tambien aqui algo vale
    sabes podria podrian llamarme escribir favor bueno dia la en dos tres semanas meses
    segunda segundo tercera opcion""",
)
_ENGLISH_WORDS = _word_set(
    """i im the to is and my you for can what how want need time this next tomorrow tmrw
    morning afternoon evening it do get have be of in on at with would like please pls
    thanks thank hi hello hey yes yeah when much does are was just there your we will
    wanted looking interested book booking appointment appt available work works after
    before any day week weekend first been here call someone talk price cost safe much
    who wrong number stop text texting sure okay ok ill id ive dont cant thats whats""",
)
_SPANISH_MARKS = re.compile(r"[ñáéíóú¿¡]", re.IGNORECASE)


def _language(text: str, words: Sequence[str], default: Language = "en") -> Language:
    """Spanish or English by the words used; a text with neither ("1", "👍", "ok") keeps
    the language the conversation is in."""
    spanish = sum(word in _SPANISH_WORDS for word in words)
    spanish += min(2, len(_SPANISH_MARKS.findall(text)))
    english = sum(word in _ENGLISH_WORDS for word in words)
    if spanish == english == 0:
        return default
    return "es" if spanish > english else "en"


# --- treatments ---------------------------------------------------------------------------

# Synonyms a catalogue rarely lists: phrase -> catalogue names/aliases to resolve to, in
# order of preference. A phrase is used only when one of its targets is on the menu.
_LIP_FILLER = ("lip filler", "filler", "dermal filler")
_LASER_HAIR = ("laser hair removal", "laser hair")
_PEEL = ("chemical peel", "peel")
_EXTRA_NAMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("relleno de labios", _LIP_FILLER),
    ("relleno labial", _LIP_FILLER),
    ("aumento de labios", _LIP_FILLER),
    ("lip injection", _LIP_FILLER),
    ("lips done", _LIP_FILLER),
    ("lips filled", _LIP_FILLER),
    ("fuller lips", _LIP_FILLER),
    ("lip augmentation", _LIP_FILLER),
    ("lip enhancement", _LIP_FILLER),
    ("lip injections", _LIP_FILLER),
    ("relleno", ("filler", "dermal filler", "lip filler")),
    ("toxina botulinica", ("botox", "tox")),
    ("neurotoxin", ("botox", "tox")),
    ("neuromodulator", ("botox", "tox")),
    ("limpieza facial", ("hydrafacial", "facial")),
    ("faciales", ("hydrafacial", "facial")),
    ("depilacion laser", _LASER_HAIR),
    ("depilacion con laser", _LASER_HAIR),
    ("depilacion", _LASER_HAIR),
    ("hair removal", _LASER_HAIR),
    ("peeling quimico", _PEEL),
    ("chem peel", _PEEL),
    ("exfoliacion quimica", _PEEL),
    ("microagujas", ("microneedling", "micro needling")),
    ("micropuncion", ("microneedling", "micro needling")),
    ("microneedle", ("microneedling", "micro needling")),
    ("consulta", ("consultation", "consult")),
    ("valoracion", ("consultation", "consult")),
)

# Ordinary words one edit away from a catalogue word: never read as a typo.
_NOT_TYPOS = _word_set(
    """racial facil filled fillet filter fuller killer tiller miller later layer
    loser lager taser needing boton consultar rellena rellene peeled peeler
    facials botas""",
)
# Single-word names that are not treatments next to these words.
_NOT_BEFORE: dict[str, frozenset[str]] = {
    "facial": _word_set(
        """swelling expression expressions hair features feature muscles muscle nerve palsy
        droop drooping numbness pain recognition tissue structure bones bone asymmetry rash
        redness hinchazon"""
    ),
    "peel": frozenset({"off", "away", "back", "paint"}),
    "consult": frozenset({"my", "with", "her", "him", "them", "your", "our"}),
}
_NOT_AFTER: dict[str, frozenset[str]] = {
    "consult": frozenset({"to", "i", "ill", "will", "should", "must", "gotta", "lets", "we"}),
    "peel": frozenset({"to", "paint", "sunburn", "skin"}),
}


def _phrase_words(text: str) -> tuple[str, ...]:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)  # "HydraFacial" -> "Hydra Facial"
    return tuple(_WORD.findall(_fold(spaced)))


def _transposition_distance_at_most_one(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by one insertion, deletion, substitution or swap."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [k for k in range(len(a)) if a[k] != b[k]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    k = 0
    while k < len(short) and short[k] == long[k]:
        k += 1
    return short[k:] == long[k + 1 :]


@lru_cache(maxsize=4096)
def _word_matches(token: str, target: str) -> bool:
    if token == target:
        return True
    if len(target) >= 3 and token in (target + "s", target + "es"):
        return True
    return (
        len(target) >= 5
        and len(token) >= 4
        and token[0] == target[0]
        and token not in _NOT_TYPOS
        and _transposition_distance_at_most_one(token, target)
    )


@dataclass(frozen=True, slots=True)
class _Phrase:
    words: tuple[str, ...]
    service: str


class _Catalogue:
    """A location's menu as phrases, longest first, indexed by first letter."""

    def __init__(self, services: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        by_form: dict[str, str] = {}
        phrases: list[_Phrase] = []
        for name, aliases in services:
            for form in (name, *aliases):
                words = _phrase_words(form)
                if not words:
                    continue
                by_form.setdefault("".join(words), name)
                phrases.append(_Phrase(words, name))
                if len(words) > 1:
                    phrases.append(_Phrase(("".join(words),), name))
        for phrase, targets in _EXTRA_NAMES:
            for target in targets:
                service = by_form.get(target.replace(" ", ""))
                if service is not None:
                    phrases.append(_Phrase(tuple(phrase.split()), service))
                    break
        phrases.sort(key=lambda p: -len(p.words))
        self.by_letter: dict[str, list[_Phrase]] = {}
        for item in phrases:
            self.by_letter.setdefault(item.words[0][0], []).append(item)

    def find(self, words: Sequence[str]) -> tuple[str, ...]:
        found: list[str] = []
        i = 0
        while i < len(words):
            width = self._match_at(words, i, found)
            i += width or 1
        return tuple(found)

    def _match_at(self, words: Sequence[str], i: int, found: list[str]) -> int:
        for phrase in self.by_letter.get(words[i][:1], ()):
            width = len(phrase.words)
            if i + width > len(words):
                continue
            if not all(_word_matches(words[i + k], phrase.words[k]) for k in range(width)):
                continue
            if width == 1 and not self._in_context(words, i, phrase.words[0]):
                return 0  # "to consult my husband": no other reading of this word either
            if phrase.service not in found:
                found.append(phrase.service)
            return width
        return 0

    @staticmethod
    def _in_context(words: Sequence[str], i: int, target: str) -> bool:
        after = words[i + 1] if i + 1 < len(words) else ""
        before = words[i - 1] if i > 0 else ""
        return after not in _NOT_BEFORE.get(target, frozenset()) and before not in _NOT_AFTER.get(
            target, frozenset()
        )


@lru_cache(maxsize=64)
def _catalogue(services: tuple[tuple[str, tuple[str, ...]], ...]) -> _Catalogue:
    return _Catalogue(services)


def _treatments(location: Location, words: Sequence[str]) -> tuple[str, ...]:
    key = tuple((service.name, tuple(service.aliases)) for service in location.services)
    return _catalogue(key).find(words)


# --- intents ------------------------------------------------------------------------------


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


_EXTRA_STOP_WORDS = frozenset({"opt out", "stop all", "alto", "parar", "stopp"})
_EXTRA_HELP_WORDS = frozenset({"ayuda"})

_STOP = _any(
    r"\bstop (texting|txting|texing|messaging|msging|contacting|sending|calling|emailing|"
    r"bothering|spamming|the (texts|messages))\b",
    r"^(please |pls |plz )?stop( (it|now|please|pls|plz|already|thanks|thank you|asap))*$",
    r"\b(remove|take|delete|drop|unsubscribe|opt) me (off|from|out)\b",
    r"\bremove me\b",
    r"\b(remove|delete|erase|take) (my|this) (number|phone number|phone|info|contact)\b",
    r"\bunsubscribe\b",
    r"\bopt( me)? ?out\b",
    r"\b(dont|do not|never|pls dont|please dont) (text|txt|message|msg|contact|sms) me\b",
    r"\bno more (texts|messages|msgs|txts|texting)\b",
    r"\b(leave me alone|lose my number|take me off)\b",
    r"\b(you|u|ya|yall) can stop( now| texting| messaging)?\b",
    r"\bcancel (the |these |your |all )?(texts|messages|msgs|subscription|alerts)\b",
    r"\bno me (escriban|escribas|escriba|manden|mandes|envien|envies|contacten|molesten)\b",
    r"\bdej(en|a|e) de (escribir|mandar|enviar|molestar|contactar)",
    r"\b(quitenme|quitame|borrenme|borrame|sacame|saquenme|eliminenme)\b",
    r"\bno (quiero|deseo) (recibir )?(mas )?(mensajes|textos)\b",
    r"\bya no (me )?(escriban|manden|envien)\b",
)
# "Not interested. STOP": a keyword standing as its own sentence.
_STOP_SENTENCE = re.compile(r"(?:^|[.!?,;])\s*(stop|stopall|unsubscribe|optout|alto)\s*(?:[.!?]|$)")

_WRONG_NUMBER = _any(
    r"\bwrong (number|num|#|person|phone)\b",
    r"\b(didnt|did not|never) call (you|u|ya|anyone|this)\b",
    r"\bi (didnt|did not|never) call\b",
    r"\bnot (the right|the correct) (number|person)\b",
    r"\b(numero|num) equivocado\b",
    r"\bequivo(c|qu)\w* (de )?(numero|persona)\b",
    r"\byo no (les? )?llame\b",
)

_HUMAN = _any(
    r"(?<!dont )(?<!do not )(?<!never )(?<!no need to )\bcall me\b",
    r"\b(give me|gimme) a (call|ring)\b",
    r"\b(someone|somebody|anyone|you|u) (please )?(call|ring|phone) me\b",
    r"\b(talk|speak|chat) (to|with) (a |an |the |your )?(real |live |actual )?(person|human|"
    r"someone|somebody|staff|receptionist|nurse|injector|manager|front desk|doctor|dr|"
    r"provider|people|rep|representative|team)\b",
    r"\brather (talk|speak|call|chat|phone)\b",
    r"\bprefer (a |to )?(call|talk|phone|speak)\b",
    r"\b(are you|is this|r u|are u|is this a) (a )?(bot|robot|automated|ai|machine)\b",
    r"\b(real|live|actual) person\b",
    r"\bcall (me )?back\b",
    r"\bcall (phonenumber|my (cell|number|phone)|this number)\b",
    r"\bcan i call\b",
    r"\bhablar con (alguien|una persona|un humano|la doctora|el doctor|recepcion|alguno)\b",
    r"\b(llamenme|llamame|llameme)\b",
    r"\bme (pueden|puede|puedes|podrian|podria) (llamar|marcar)\b",
    r"\b(pueden|puede|puedes|podrian|podria) (llamarme|marcarme)\b",
    r"\buna persona real\b",
)

_CANCEL = _any(
    r"\bcancel+(ing|ed|ation)?\b(?! (policy|fee|fees))",
    r"\b(cant|cannot|can not|wont be able to|unable to|not able to) make (it|my (appointment|appt|"
    r"apt|visit))\b",
    r"\bcancelar\b",
    r"\bno (voy a poder|puedo) (ir|llegar|asistir)\b",
)
# "cancellation policy" is a question; "cancel these texts" is an opt-out
_CANCEL_NOT_APPOINTMENT = _any(
    r"\bcancel+ation (policy|fee|fees)\b",
    r"\bcancel (the |these |your |all )?(texts|messages|msgs|subscription|alerts)\b",
)

_RESCHEDULE = _any(
    r"\bre ?schedul\w*\b",
    r"\bre ?book\b",
    r"\b(move|change|switch|push|bump|shift)( back)? (my|the|our)( \w+)? (appointment|appt|apt|"
    r"booking|visit|time|session)\b",
    r"\b(push|move|bump) (it|that|this) (back|out|to|up)\b",
    r"\bpostpone\b",
    r"\b(reprogramar|reagendar|posponer)\b",
    r"\b(cambiar|mover) (mi|la) (cita|hora|fecha)\b",
    r"\bcambiar de (dia|hora|fecha)\b",
)

# "Running 10 min late", "be there in 15", "llego tarde": acknowledged, staff get a note.
_LATE = _any(
    r"\b(running|gonna be|going to be|will be|ill be|im|i am|might be|may be|bit|little|"
    r"few (minutes|mins)|\d+ ?(minutes|mins|min)) (a )?(bit |little |few (minutes|mins) |"
    r"\d+ ?(minutes|mins|min) )?late\b",
    r"\b(stuck in|sitting in|bad) traffic\b",
    r"\b(be there|arrive|arriving|get there) in \d+( ?(minutes|mins|min))?\b",
    r"\bon my way\b",
    r"\b(llego|llegare|voy|vamos|ire|estoy) (un poco |unos minutos |\d+ minutos )?tarde\b",
    r"\bvoy en camino\b",
)

_INSTEAD = re.compile(r"\b(instead|another (day|time)|different (day|time)|otro dia)\b")

_MEDICAL_TOPIC = _any(
    r"\b(pregnan\w*|breast ?feed\w*|nursing|lactating|blood thinners?|eliquis|warfarin|"
    r"accutane|isotretinoin|allerg\w*|side effects?|contraindicat\w*|autoimmune|"
    r"medications?|meds|antibiotics?|cold sores?|herpes|keloids?|embarazada|lactancia|"
    r"amamantando|dando pecho|efectos secundarios|alergi\w*|medicamentos?)\b",
    r"\bis (it|this|that|botox|filler) safe\b",
    r"\bsafe (for|to|while|if|during|with)\b",
    r"\bes seguro\b",
    r"\b(medical|medically) question\b",
    r"\bquestion for (the|a|your) (nurse|doctor|dr|injector|provider)\b",
)
_MEDICAL_ASKED = _any(
    r"\b(hurt|hurts|painful|pain|downtime|recovery|heal|healing|bruis\w*|swelling|numbing|"
    r"numb|results|work ?out|exercise|gym|alcohol|drink|wine|makeup|sun exposure|tanning|"
    r"shower|risks?|safe|normal|duele|dolor|recuperacion|moretones|resultados)\b",
    r"\bhow long (does|do|will|would|is|until)\b",
)
_QUESTION = _any(
    r"\?",
    r"^(is|are|can|could|does|do|will|would|should|how|what|whats|when|hows|any|es|puedo|"
    r"cuanto|cuando|que)\b",
    r"\b(wondering|wonder|question|curious|want to know|wanted to know|pregunta)\b",
)

_PRICE = _any(
    r"\bhow much\b(?! (swelling|bruising|pain|time|longer|downtime|does it hurt|is normal|"
    r"should i|product|filler should|botox should))",
    r"\b(price|prices|pricing|priced|cost|costs|costing|fee|fees|specials|deals?|promos?|"
    r"promotions?|discounts?|financing|payment plans?|per unit|per syringe|afford|"
    r"affordable|expensive|cheap|cheaper|how many units|rates|quote|estimate|care ?credit|"
    r"cherry|klarna|afterpay|for free|is it free|free of charge|complimentary|gratis)\b",
    r"\$",
    r"\bcuanto (cuesta|cuestan|vale|valen|es|sale|salen|cobran)\b",
    r"\b(precio|precios|costo|costos|promocion|promociones|descuento|descuentos)\b",
)

# --- urgent symptoms: recall first, never fuzzy -------------------------------------------

_URGENT = _any(
    r"\bswell(ing|ed|s)\b",
    r"\bswollen\b",
    r"\b(severe|extreme|intense|terrible|horrible|awful|sharp|bad|worst|crazy|insane|"
    r"agonizing|really bad|so much|a lot of|lots of|unbearable|constant) (pain|ache|aching|"
    r"headache)\b",
    r"\b(excruciating|unbearable|agonizing|throbbing)\b",
    r"\bin (so much |a lot of |severe |terrible |serious )?pain\b",
    r"\bpain (is|has been|keeps|getting) (getting )?(worse|severe|unbearable|really bad|"
    r"terrible|spreading)\b",
    r"\bhurts? (so|really|very|a lot|like hell|badly)\b",
    r"\bblanch\w*\b",
    r"\b(skin|lip|lips|area|spot|nose|face|cheek|cheeks|chin|forehead|tissue|injection site)\b"
    r"[a-z ]{0,20}?\b(white|gray|grey|blue|bluish|purple|purplish|dusky|blotchy)\b",
    r"\b(turned|turning|went|going|getting|gone|looks) (dark|black|white|blue|gray|grey|purple|"
    r"pale)\b",
    r"\b(really|very|super|so|extremely|incredibly) (painful|sore|tender)\b",
    r"\bred (and )?hot\b",
    r"\b(is|and|keeps|its) spreading\b",
    r"\b(swelling|pain|redness|bump|lump|bruise|bruising|rash|it|its|it is)\b[a-z ]{0,15}"
    r"\b(getting|gotten|got) (worse|bigger)\b",
    r"\bbleeding\b",
    r"\b(eyebrow|brow|eyelid|lid|eye)s? (dropped|drooped|fell|is falling|is lower|feels heavy|"
    r"is heavy|sagging)\b",
    r"\bwhite (patch|patches|spot|spots|area)\b",
    r"\b(mottled|lacy|dusky|necrosis|necrotic|discolou?r\w*)\b",
    r"\bvision (change|changes|loss|problem|problems|is|went|going|blurry|blurred|issues)\b",
    r"\b(blurry|blurred|double|lost|losing|loss of) (vision|eyesight|sight)\b",
    r"\b(eye|eyes|everything|seeing|vision) (is |are |looks |went |has been )?(blurry|blurred)\b",
    r"\b(cant|cannot|can not) see\b",
    r"\bblind\b",
    r"\bfever(ish|s)?\b",
    r"\bchills\b",
    r"\b(high )?temperature of\b",
    r"\bblister\w*\b",
    r"\b(oozing|pus|weeping|infected|infection|abscess)\b",
    r"\b(trouble|difficulty|hard|hard time|problems?|struggling|difficult) (breathing|to breathe|"
    r"swallowing|to swallow)\b",
    r"\b(cant|cannot|can not|couldnt) (breathe|breath|swallow)\b",
    r"\bshort(ness)? of breath\b",
    r"\bthroat (is )?(closing|swelling|tight|swollen)\b",
    r"\bwheez\w*\b",
    r"\bdroop\w*\b",
    r"\b(eyelid|eye lid)s?\b.*\b(down|heavy|low|fell|falling|dropped|sagging|wont open)\b",
    r"\bptosis\b",
    r"\b(eye|brow|eyebrow|mouth|lip|smile|face) (is |looks )?(sagging|uneven|crooked)\b",
    r"\b(cant|cannot|can barely|barely|hard to|trouble) (close|open|closing|opening) my "
    r"(eye|eyes|mouth)\b",
    r"\b(allergic reaction|hives|anaphyla\w*)\b",
    r"\brash\b",
    r"\bnumb(ness)?\b",
    r"\b(bleeding|blood) (wont|will not|doesnt|does not|isnt) stop\w*\b",
    r"\bwont stop bleeding\b",
    r"\bbleeding (a lot|heavily|badly)\b",
    r"\bburn(s|ed|t|ing)?\b",
    r"\b(chest pain|dizzy|dizziness|faint(ed|ing)|passed out|emergency|911|urgent care)\b",
    r"\b(in|to) the (hospital|er|emergency room)\b",
    r"\bhot to the touch\b",
    r"\bred streaks?\b",
    # Spanish
    r"\bhinchaz(on|ones)\b",
    r"\b(hinchad|inflamad)[oa]s?\b",
    r"\bhinch(o|a|an|aron|arse|ando)\b",
    r"\b(me arde|le arde|ardor|me quema|arde mucho)\b",
    r"\binflamacion\b",
    r"\bdolor (muy )?(fuerte|intenso|terrible|horrible|insoportable)\b",
    r"\bmucho dolor\b",
    r"\bme duele (mucho|demasiado|bastante)\b",
    r"\bfiebre\b",
    r"\bampollas?\b",
    r"\bno puedo (respirar|tragar|ver)\b",
    r"\b(dificultad|problemas?|me cuesta) (para )?(respirar|tragar)\b",
    r"\bfalta de aire\b",
    r"\bvision borrosa\b",
    r"\b(veo borroso|no veo)\b",
    r"\b(parpado|ojo|ceja|boca) caid[oa]\b",
    r"\bse (me )?(cayo|cae) el (parpado|ojo)\b",
    r"\bpiel (blanca|morada|gris|palida|oscura)\b",
    r"\bse (puso|esta poniendo|ve) (blanc|morad|gris|palid)\w*\b",
    r"\b(infeccion|infectad[oa]|ronchas|sarpullido|urticaria|quemadura|quemaduras|mareo|"
    r"mareada|mareado|desmaye|sangrado|emergencia|urgente|pus)\b",
    r"\bme queme\b",
    r"\breaccion alergica\b",
    r"\bentumecid[oa]\b",
)
# Everyday phrases that contain a symptom word.
_NOT_SYMPTOM = _any(
    r"\b(cabin|spring|bieber|baby|saturday night|disco|football|march madness) fever\b",
    r"\brash decision\b",
    r"\bburn (a hole|fat|calories|through)\b",
    r"\b(burning|burn) question\b",
    r"\bburn ?out\b",
    r"\bburns? easily\b",
    r"\bheart ?burn\b",
    r"\bpain (in the (butt|neck|ass)|point)\b",
    r"\bgrowing pains\b",
    r"\bblister packs?\b",
    r"\b(swelling|pain|redness|numbness|rash|fever|bruising)( has| is| have)? "
    r"(gone|went|going|go|come|came) (down|away)\b",
    r"\b(swelling|pain|redness|numbness|rash|fever|bruising) (is|has) (gone|better|fine|"
    r"much better|improving)\b",
    r"\b(not an?|no) emergency\b",
    r"\bblind date\b",
    r"\bdroopy (eyelids|lids|brows|eyebrows|skin|jowls|cheeks)\b(?!.*\b(after|since)\b)",
)
_NEGATED_BEFORE = re.compile(
    r"\b(no|not|without|zero|sin|never|nunca|isnt|arent|wasnt|dont have|didnt have|dont get|"
    r"didnt get|havent had|no hay|nor|or any)( (any|more|real|major|signs? of|sign of|much))?"
    r"\s*$"
)
_HYPOTHETICAL = _any(
    r"\b(will|would|could|can|do|does|is there|are there|should)\b",
    r"\bhow long\b",
    r"\b(risk|risks|side effects?|chance|possible|expect|normal|usually|typically|common)\b",
    r"\b(puede|habra|es normal|normalmente)\b",
)
_HAPPENING = _any(
    r"(?<!will )(?<!would )(?<!could )(?<!should )(?<!might )(?<!do )\bi have\b",
    r"\b(my|mine|ive got|i got|i had|im|i am|i feel|feeling|since|yesterday|today|"
    r"this morning|last night|right now|still|getting worse|started|this much|so much|"
    r"this bad|so bad|tengo|me duele|mi|mis|desde|ayer|hoy|todavia|sigue)\b",
)

# --- patient ------------------------------------------------------------------------------

_NEW_PATIENT = _any(
    r"\b(first|1st) (time|visit|appointment|appt)\b(?! (at|with|in) (a|another|other))",
    r"\b(never|havent|have not) been( (here|there|in|to (you|your|the|a)))?\b",
    r"\bnever (came|come|visited)\b",
    r"\bnew (patient|client|here|to (you|your|the|this))\b",
    r"\b(im|i am) new\b",
    r"\bprimera (vez|cita|visita)\b",
    r"\bnunca (he|e) (ido|venido|estado)\b",
    r"\bsoy (nueva|nuevo)\b",
    r"\b(paciente|cliente) (nueva|nuevo)\b",
    r"\breferred (me|by)\b",
)
_RETURNING = _any(
    r"\b(ive|i have|i ve|weve) been (there|here|in (there|here|before|for)|to (you|your|the)|"
    r"before|coming|going|seeing|a (patient|client))\b",
    r"(?<!never )(?<!havent )(?<!not )\bbeen (there |here |in )?before\b",
    r"\bcame in (last|before|a)\b",
    r"\b(returning|existing|current|regular) (patient|client)\b",
    r"\b(im|i am) a regular\b",
    r"\bpatient of (dr|doctor|nurse)\b",
    r"\b(im|i am) (a|an existing|already a) (patient|client)\b",
    r"\b(my|the) (usual|last (appointment|appt|visit|time|treatment))\b",
    r"\blast time i (was|came|got|had)\b",
    r"\bsame as last time\b",
    r"\b(touch|top) ?ups?\b",
    r"\b(come|coming) back for\b",
    r"\bback for (more|my|another|a)\b",
    r"\bmy (provider|injector|nurse|doctor) (is|was)\b",
    r"\bi (see|saw) (dr|doctor|nurse)\b",
    r"\bya soy (paciente|cliente)\b",
    r"\bsoy (paciente|cliente) de\b",
    r"\bya (he|e) (ido|venido|estado)\b",
    r"\bya (fui|vine)\b",
    r"\bla ultima vez\b",
    r"\b(had|got|did)\b[a-z0-9 ]{0,30}\b(with|at) (you|u|yall|your (place|spa|office|clinic))\b",
    r"\bnot (a |an )?new\b",
    r"\bnot (my )?(first|1st) time\b",
)

# --- choices and confirmations -------------------------------------------------------------

_ORDINALS = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "primera": 1,
    "primer": 1,
    "primero": 1,
    "segunda": 2,
    "segundo": 2,
    "tercera": 3,
    "tercer": 3,
    "tercero": 3,
    "cuarta": 4,
    "quinta": 5,
}
_CHOICE_WHOLE = re.compile(
    r"^(?:(?:option|opt|choice|number|num|no|#|opcion|numero|la|el|lets do|ill take|i ll take|"
    r"take|go with|do|id like|i want)\s*#?\s*)?([1-9])"
    r"(?:\s+(?:please|pls|plz|thanks|thank you|thx|works|is good|is fine|is perfect|"
    r"sounds good|por favor|gracias|for me))*$"
)
_CHOICE_ANYWHERE = re.compile(
    r"\b(?:option|opt|choice|opcion|numero|number)\s*#?\s*([1-9])\b|#\s*([1-9])\b|"
    r"\b(?:ill take|ill do|lets do|go with|i choose|i pick|id like|im taking|i want) (?:#\s*)?"
    r"([1-9])\b(?! ?(pm|am|:|units|syringes|weeks|days|hours|oclock|areas))"
)
# "the 3rd" alone is a date; "the third", "3rd one" and "the third one" are choices.
_CHOICE_ORDINAL = re.compile(
    r"\b(?:the |la |el )?(" + "|".join(_ORDINALS) + r") (?:one|option|slot|choice|opcion)\b|"
    r"^(?:the |la |el )?(" + "|".join(o for o in _ORDINALS if not o[0].isdigit()) + r")"
    r"(?: please| pls| por favor)?$"
)
_CHOICE_BY_TIME = re.compile(
    r"\b(the|la|el) (\d{1,2}(:\d{2})? ?(am|pm)?|noon) (one|slot|option|time|appt|appointment|"
    r"opcion)\b|\b\d{1,2}(:\d{2})? ?(am|pm)? one\b"
)

_AFFIRM_START = re.compile(
    r"^((omg|oh+|h+i+|he+y+|hello|haha|lol|um+|well|wow|ok|okay|great|perfect) )*"
    r"(yes+|yeah|yea|yep|yup|yas|sure|absolutely|definitely|of course|correct|claro|dale|"
    r"por supuesto|de acuerdo|perfecto|sounds good|that works|works for me)\b|"
    r"^si( (gracias|por favor|porfa|claro|quiero|perfecto)\b|$)"
)
_AFFIRM_ANYWHERE = re.compile(
    r"\b(sounds good|sounds great|that works|works for me|lets do it|lets do that|book it|"
    r"yes please|please do|book me)\b"
)
_AFFIRM_WHOLE = re.compile(
    r"^((ok+|okay|okie|k+|alright|great|perfect|cool|yes+|yeah|yep|sure|si|claro|va|vale)"
    r" ?)+( (thanks|thank you|thx|ty|gracias|sounds good|please))?$"
)
_DENY = _any(
    r"^\s*(no+|nope|nah|nop)\b(?=\s*([,.!]|$)|\s+(thanks|thank|thx|gracias|im|i|not|sorry|"
    r"thats|that|dont|its|just|maybe|ive|we|nothing|estoy)\b)",
    r"\b(not interested|no longer interested|no estoy interesad[oa]|never ?mind|nvm|"
    r"no thanks|no thank you|no gracias)\b",
    r"\b(booked|went|going|decided to go) (somewhere|elsewhere|with someone else)\b",
    r"\bfound (another|a different|someone else)\b",
)
_AFFIRM_PUNCTUATED = re.compile(r"^(si|sip|claro|yes+|yeah|yep|sure)\s*[,.!]")
# A message that is only gratitude or a sign-off ("thanks!", "ok thank you so much").
_THANKS = re.compile(
    r"^((ok+|okay|great|perfect|awesome|amazing|cool|got it|sounds good|will do|yes|yay) )*"
    r"(thanks|thank you|thankyou|thx|ty|tysm|thank u|many thanks|appreciate it|gracias|"
    r"muchas gracias|mil gracias|see you then|see you soon|will do|got it)"
    r"( (so|very) much| a lot| again| you| for the link| for your help)*$"
)


# --- the entry point ----------------------------------------------------------------------


def understand(
    text: str,
    now: datetime,
    location: Location,
    *,
    known_patient: bool = False,
    asked: Asked | None = None,
    language: Language = "en",
) -> Understanding:
    """Read one patient message; ``now`` (aware) anchors every relative date.

    ``asked`` is the question the bot asked last: a short answer ("yes", "no", "new",
    "been before", "whenever", "not sure", "👍") means what it means as an answer to that
    question (see :func:`_in_context`). ``language`` is the conversation's so far: a
    text with no words of either language keeps it.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    folded = _fold(text)
    words = _WORD.findall(folded)
    plain = " ".join(_PLAIN_TOKEN.findall(folded))
    bare = " ".join(words)
    language = _language(text, words, language)

    keyword = _carrier_keyword(bare)
    if keyword is not None:
        return Understanding(
            intents=(keyword,),
            patient="returning" if known_patient else None,
            language="es" if bare in {"alto", "parar", "ayuda"} else language,
        )

    treatments = _treatments(location, words)
    intents = set(_intents(folded, plain))
    # The booking confirmation's one-letter replies: C confirm, R reschedule, X cancel.
    letter = {"c": "affirm", "r": "reschedule", "x": "cancel"}.get(bare)
    if _DECLINE.search(plain):
        intents.add("decline")
    if letter is not None:
        intents.add(letter)
    choice = _choice(plain)
    if choice is not None or _CHOICE_BY_TIME.search(plain):
        intents.add("choice")
    # a bare "not sure"/"idk" is about timing only when nothing else was said
    unclear_only = not treatments and "?" not in plain and intents <= {"affirm", "deny"}
    understood = Understanding(
        intents=tuple(i for i in INTENT_ORDER if i in intents),
        treatments=treatments,
        times=extract_times(folded, now, location),
        timing=vague_timing(plain, allow_weak=unclear_only and asked in (None, "time")),
        patient="returning" if known_patient else _patient(plain) or _new_at_end(folded),
        choice=choice,
        language=language,
    )
    return understood if asked is None else _in_context(understood, asked, bare, plain)


# Short answers to "Have you visited us before, or is this your first time?".
_NEW_ANSWER = re.compile(
    r"^(im |i am |this is )?(new|new here|new patient|new client|first|first time|first visit|"
    r"my first time|its my first time|brand new|nueva|nuevo|soy nueva|soy nuevo|"
    r"primera|primera vez|es mi primera vez|la primera)( (here|time|one))?$"
)
_RETURNING_ANSWER = re.compile(
    r"^(yes |yeah |yep |si )?(returning|returning patient|existing|existing patient|regular|"
    r"been before|ive been before|i have been before|been there|been here|many times|"
    r"a few times|several times|a couple times|once|once before|before|already|"
    r"ya|ya he ido|ya fui|ya he estado|si ya|si he ido|varias veces|antes)( before)?$"
)
_UNSURE_ANSWER = re.compile(
    r"^(im |i am )?(not sure|unsure|idk|i dont know|dont know|no idea|no se|not certain|"
    r"undecided|no estoy segur[oa]|tal vez|maybe)( yet)?$"
)
_CONFIRM_ANSWER = re.compile(
    r"^((ok+|okay|yes+|yep|great|perfect|sounds good) )?"
    r"(ok+|okay|k|yes+|yeah|yep|yup|sure|si|confirm|confirmed|confirmo|confirmado|"
    r"(see|c) (you|u|ya) (then|there|soon)|will be there|ill be there|i will be there|nos vemos|"
    r"alli estare|ahi estare|perfect|great|sounds good)( (thanks|thank you|thx|gracias))?$"
)


def _in_context(u: Understanding, asked: Asked, bare: str, plain: str) -> Understanding:
    """What a short reply means as an answer to the question the bot asked last."""
    intents = set(u.intents)
    affirm = "affirm" in intents and "deny" not in intents
    deny = "deny" in intents and "affirm" not in intents
    said_little = not (u.treatments or u.times or u.timing or u.patient)
    if asked == "patient" and u.patient is None:
        if _NEW_ANSWER.match(bare):
            return replace(u, patient="new")
        if _RETURNING_ANSWER.match(bare):
            return replace(u, patient="returning")
        if said_little and affirm:  # "yes" (I have visited before)
            return replace(u, patient="returning")
        if said_little and deny and bare.split()[0] in ("no", "nope", "nah", "nop", "never"):
            return replace(u, patient="new")  # "no" (not before)
    if asked in ("treatment", "patient") and said_little and _UNSURE_ANSWER.match(bare):
        intents.add("unsure")
    if asked == "time" and said_little and _UNSURE_ANSWER.match(bare):
        return replace(u, timing="unsure")
    if asked == "waitlist" and said_little and _WAITLIST_YES.match(bare):
        intents.add("affirm")  # "y", "add me", "sure" to "join the waitlist?"
    if (
        asked == "confirm"
        and not u.times
        and "cancel" not in intents
        and _CONFIRM_ANSWER.match(bare)
    ):
        intents.add("affirm")
    if asked == "confirm" and "?" in plain and not intents - {"thanks"} and not u.times:
        # "Where do I park?" after a reminder: a question about the visit, for the front desk.
        intents.add("question")
    return replace(u, intents=tuple(i for i in INTENT_ORDER if i in intents))


_WAITLIST_YES = re.compile(r"^(?:y|yy|ya|yea|add me|put me on(?: it)?|sign me up|please do)\b")

# "None of those work": the offered times are turned down (the machine offers others).
_DECLINE = re.compile(
    r"\b(?:none|neither|nope none|no(?:ne)? of (?:those|these|them|the times)"
    r"|(?:doesn ?t|don ?t|won ?t|can ?t|cannot|wont|cant|dont|doesnt)"
    r" (?:work|make (?:those|any))"
    r"|other (?:times?|options?|days?|slots?)|something else|any other|different (?:times?|days?)"
    r"|later (?:times?|ones?)|earlier (?:times?|ones?)"
    r"|ninguno|ninguna|otros? horarios?|otra hora|otro dia)\b"
)


def _carrier_keyword(bare: str) -> str | None:
    if (
        bare in STOP_WORDS
        or bare in _EXTRA_STOP_WORDS
        or (bare and all(w in STOP_WORDS for w in bare.split()))
    ):
        return "stop"
    # "yes" re-subscribes only a patient who opted out: the messaging layer, which knows,
    # decides; to the conversation it is an answer.
    if bare in START_WORDS and bare != "yes":
        return "start"
    if bare in HELP_WORDS or bare in _EXTRA_HELP_WORDS:
        return "help"
    return None


def _intents(folded: str, plain: str) -> list[str]:
    found: list[str] = []
    if _urgent(folded):
        found.append("urgent")
    if _STOP.search(plain) or _STOP_SENTENCE.search(folded):
        found.append("stop")
    if _WRONG_NUMBER.search(plain):
        found.append("wrong_number")
    if _HUMAN.search(plain):
        found.append("human")
    appointment_words = _CANCEL_NOT_APPOINTMENT.sub(" ", plain)
    if _CANCEL.search(appointment_words):
        found.append("cancel")
    if _RESCHEDULE.search(plain):
        found.append("reschedule")
    elif "cancel" in found and _INSTEAD.search(plain):  # "can't make it, next week instead?"
        found[found.index("cancel")] = "reschedule"
    if _LATE.search(plain) and not {"cancel", "reschedule"} & set(found):
        found.append("late")
    asked = bool(_QUESTION.search(plain))
    if _MEDICAL_TOPIC.search(plain) or (asked and _MEDICAL_ASKED.search(plain)):
        found.append("medical_question")
    if _PRICE.search(plain):
        found.append("price_question")
    if (
        _AFFIRM_START.search(plain)
        or _AFFIRM_ANYWHERE.search(plain)
        or _AFFIRM_WHOLE.match(plain)
        or _AFFIRM_PUNCTUATED.match(folded)
    ):
        found.append("affirm")
    if _DENY.search(folded):
        found.append("deny")
    if _THANKS.match(plain):
        found.append("thanks")
    return found


def _urgent(folded: str) -> bool:
    text = _NOT_SYMPTOM.sub(" ", folded)
    # "will there be swelling?" is a question to answer, not a symptom to escalate
    hypothetical = "?" in text and bool(_HYPOTHETICAL.search(text)) and not _HAPPENING.search(text)
    for match in _URGENT.finditer(text):
        if not _NEGATED_BEFORE.search(text[max(0, match.start() - 40) : match.start()]):
            return not hypothetical
    return False


# "filler friday morning, new" / "botox, new patient": a trailing "new" says who they are.
_NEW_AT_END = re.compile(
    r"(?:[,.;]\s*|\b(?:and|im|i am)\s+)new(?: here| patient| client)?\s*[.!]*$"
)


def _new_at_end(folded: str) -> Patient | None:
    return "new" if _NEW_AT_END.search(folded) else None


def _patient(plain: str) -> Patient | None:
    if _RETURNING.search(plain):
        return "returning"
    if _NEW_PATIENT.search(plain):
        return "new"
    return None


def _choice(plain: str) -> int | None:
    whole = _CHOICE_WHOLE.match(plain)
    if whole:
        return int(whole.group(1))
    anywhere = _CHOICE_ANYWHERE.search(plain)
    if anywhere:
        return int(next(g for g in anywhere.groups() if g and g.isdigit()))
    ordinal = _CHOICE_ORDINAL.search(plain)
    if ordinal:
        return _ORDINALS[ordinal.group(1) or ordinal.group(2)]
    return None
