"""Secret redaction: applied to every byte the plugin writes, reports, prints or uploads.

A secret is masked in every encoding the plugin's own writers give it (raw UTF-8, JSON with and
without ``ensure_ascii``, Python ``repr``, XML text and attributes as in JUnit, URL-encoding as in
object names), so escaping cannot carry it past the mask. Encodings an agent chooses for itself
(base64, hex, a cipher) cannot be recognised by anyone and are not attempted: the README says so.

Only text that came from tasks and agents is redacted. The plugin's own structured fields
(outcome, verdict, score, ids, timestamps: ``STRUCTURED_FIELDS``) are never rewritten, and a secret
that is too short or too common to mask safely is refused at start (``unsafe_reason``), so masking
can neither forge a verdict nor be silently skipped.
"""

from __future__ import annotations

import builtins
import functools
import json
import re
import shutil
from collections.abc import Iterable
from typing import IO, Any
from urllib.parse import quote, quote_plus

MASK = "***REDACTED***"
MIN_SECRET_CHARS = 4

# Words that a mask would corrupt or a secret would be guessed from. The plugin's own vocabulary
# (outcomes, verdicts, result field names, JSON and Python keywords) and very common English words:
# masking "failed" would rewrite outcomes, masking "true" would rewrite every JSON boolean.
_OWN_WORDS = """
passed failed error errors skipped skip pass fail rerun interrupted resumed accepted wrong_answer
time_limit memory_limit runtime_error compile_error bad_answer bad_task not_run agent_timeout
agent_error verifier_timeout reward score verdict outcome message metrics tokens_in tokens_out
cost_usd duration_s started_at finished_at worker attempt repeat task_id benchmark agent key
nodeid run_id sandbox limit_multiplier error_kind result results answer judge tests test total
oracle noop local docker harbor usaco bronze silver gold platinum redacted summary config
internal_error lost infrastructure backend store verifier benchmark interrupted index time_s exit_code
detail total tests_passed tests_total uploads notes by_benchmark errors_by_kind slowest
true false null none nan infinity undefined yes no on off
"""
_ENGLISH_WORDS = """
the be to of and a in that have it for not with as you do at this but his by from they we say her
she or an will my one all would there their what so up out if about who get which go me when make
can like time just him know take people into year your good some could them see other than then
now look only come its over think also back after use two how our work first well way even new want
because any these give day most us is are was were been has had did does done said made went
user admin root test guest demo example sample default secret password passwd token key apikey
value values name names data info debug warning warn hello world foo bar baz qux main master
string number object array list dict open close read write file files path home none
"""
COMMON_WORDS = frozenset(w for w in (_OWN_WORDS + _ENGLISH_WORDS).split())
"""Lower-case words no secret may be (compared case-insensitively)."""

STRUCTURED_FIELDS = frozenset({
    "outcome", "verdict", "score", "task_id", "benchmark", "agent", "key", "nodeid", "run_id", "worker",
    "attempt", "repeat", "started_at", "finished_at", "duration_s", "error_kind", "sandbox",
    "limit_multiplier", "resumed", "tokens_in", "tokens_out", "cost_usd", "exit_status", "wall_seconds",
    "tasks", "pass_rate", "mean_score",
})
"""Keys whose values the plugin writes itself: never redacted (where ``Redactor.obj`` is given them).
Not ``message``, ``error`` or ``metrics``: those carry task and agent text."""


_OWN_VOCABULARY = tuple(sorted(set(_OWN_WORDS.split()) | {MASK.lower()}))
_NUMBERISH = re.compile(r"^[0-9.:+\-\s]*$")
MIN_NUMERIC_SECRET_CHARS = 8


# The marker ``capture.CappedBuffer`` puts where it cut output: a secret may straddle the cut, leaving
# its start before the marker and its end after it, which a whole-value search cannot find.
_CUT_MARKER = r"\n\[\.\.\. cloudeval: \d+ bytes cut, \d+ bytes in all \.\.\.\]\n"
_CUT_TEXT = re.compile(_CUT_MARKER)
_CUT_BYTES = re.compile(_CUT_MARKER.encode())
MIN_PARTIAL_CHARS = 3
"""A secret's start (end) of at least this many characters just before (after) a cut is masked."""


def _mask_cut_partials(data: Any, forms: tuple[Any, ...], mask: Any) -> Any:
    """Mask fragments of a secret on either side of each cut marker in ``data`` (str or bytes)."""
    pattern = _CUT_BYTES if isinstance(data, (bytes, bytearray)) else _CUT_TEXT
    if not forms or pattern.search(data) is None:
        return data
    out = []
    pos = 0
    for match in pattern.finditer(data):
        before = data[pos:match.start()]
        cut = max((n for form in forms for n in range(MIN_PARTIAL_CHARS, len(form))
                   if before.endswith(form[:n])), default=0)
        out.append(before[:len(before) - cut] + (mask if cut else before[:0]))
        out.append(match.group(0))
        after_start = match.end()
        rest = data[after_start:]
        lead = max((n for form in forms for n in range(MIN_PARTIAL_CHARS, len(form))
                    if rest.startswith(form[-n:])), default=0)
        if lead:
            out.append(mask)
        pos = after_start + lead
    out.append(data[pos:])
    return data[:0].join(out)


def unsafe_reason(value: str) -> str | None:
    """Why ``value`` cannot be redacted safely (None when it can). Never includes the value.

    Refused: under 4 characters; a common word; any part of the plugin's own vocabulary (outcomes,
    verdicts, field names: "RONG_ANS" would mask part of every WRONG_ANSWER); digits only (with
    ``.:-+``) under 8 characters, which would mask parts of the numbers, dates and times we write.
    """
    if len(value) < MIN_SECRET_CHARS:
        return f"it is shorter than {MIN_SECRET_CHARS} characters"
    lowered = value.strip().lower()
    if lowered in COMMON_WORDS:
        return "it is a common word (masking it would rewrite the plugin's own records)"
    if any(lowered in word for word in _OWN_VOCABULARY):
        return "it is part of the plugin's own vocabulary (outcomes, verdicts, field names)"
    if _NUMBERISH.match(value) and len(value) < MIN_NUMERIC_SECRET_CHARS:
        return f"it is a number shorter than {MIN_NUMERIC_SECRET_CHARS} characters (it would mask digits of times and scores)"
    return None


def encodings(value: str) -> set[str]:
    """``value`` as each of the plugin's writers may spell it."""
    xml_text = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    xml_attr = (xml_text.replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;")
                .replace("\t", "&#09;"))
    forms = {
        value,
        json.dumps(value)[1:-1],                      # ensure_ascii=True: \u00f6, \", \\
        json.dumps(value, ensure_ascii=False)[1:-1],  # \", \\ with raw non-ASCII
        repr(value)[1:-1],                            # tracebacks and !r in messages
        repr(value.encode("utf-8", "surrogateescape"))[2:-1],
        xml_text, xml_attr, xml_attr.replace("'", "&apos;"),
        quote(value, safe=""), quote(value), quote_plus(value),
    }
    return {f for f in forms if f}


@functools.lru_cache(maxsize=8)
def _cached(values: tuple[str, ...]) -> Redactor:
    return Redactor(values)


def redactor_for(settings: Any) -> Redactor:
    """The run's redactor, from ``Settings.redact_values`` (built once per process and set of values)."""
    return _cached(tuple(getattr(settings, "redact_values", ()) or ()))


class Redactor:
    """Replaces each secret, in each of its encodings, with a mask. Longest first, so overlaps mask fully."""

    def __init__(self, values: Iterable[str]) -> None:
        self.secrets = tuple(sorted({v for v in values if v}, key=len, reverse=True))
        forms: set[str] = set()
        for value in self.secrets:
            forms |= encodings(value)
        self.values = tuple(sorted(forms, key=lambda f: (-len(f), f)))
        self._bvalues = tuple(sorted({v.encode("utf-8", "surrogateescape") for v in self.values},
                                     key=lambda b: (-len(b), b)))

    @property
    def longest(self) -> int:
        """Bytes of the longest encoded secret (how much a stream must hold back between chunks)."""
        return len(self._bvalues[0]) if self._bvalues else 0

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return _mask_cut_partials(text, self.values, MASK)

    def bytes(self, data: bytes) -> bytes:
        for value in self._bvalues:
            if value in data:
                data = data.replace(value, MASK.encode())
        return _mask_cut_partials(data, self._bvalues, MASK.encode())

    def found_in(self, data: builtins.bytes) -> bool:
        """Whether any encoding of any secret occurs in ``data``."""
        return any(value in data for value in self._bvalues)

    def obj(self, value: Any, keep: frozenset[str] = frozenset()) -> Any:
        """Redact strings anywhere in a JSON-like structure, except under the keys in ``keep``."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {(k if k in keep else self.obj(k)): (v if k in keep else self.obj(v, keep))
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v, keep) for v in value]
        return value

    def result(self, data: dict[str, Any]) -> dict[str, Any]:
        """A result record: the plugin's fields kept as they are, task and agent text redacted."""
        return self.obj(data, STRUCTURED_FIELDS)

    def stream(self, src: IO[builtins.bytes], dst: IO[builtins.bytes], chunk_bytes: int = 1 << 20) -> int:
        """Copy ``src`` to ``dst`` masked, in bounded memory (a secret may span chunks); masks written."""
        values = list(self._bvalues)
        if not values:
            shutil.copyfileobj(src, dst)
            return 0
        pattern = re.compile(b"|".join(re.escape(v) for v in values))  # longest first, as bytes()
        mask = MASK.encode()
        keep = self.longest - 1
        carry = b""
        masked = 0
        while True:
            block = src.read(chunk_bytes)
            data = carry + block
            if not block:
                out, n = pattern.subn(mask, data)
                dst.write(out)
                return masked + n
            # A match that starts before safe_end lies wholly inside data; later ones wait for more bytes.
            safe_end = len(data) - keep
            parts = bytearray()
            pos = 0
            for match in pattern.finditer(data):
                if match.start() >= safe_end:
                    break
                parts += data[pos:match.start()]
                parts += mask
                masked += 1
                pos = match.end()
            emit = max(safe_end, pos)
            parts += data[pos:emit]
            dst.write(bytes(parts))
            carry = data[emit:]
