r"""The safe condition language of routing policies and classification rules: a tokenizer and
recursive-descent parser to an AST, compiled once into Python closures; never `eval`.

    ticket.category == "complaint" && customer.segment in ["vip", "key_account"]
    contains_any(text, ["退款", "refund"]) or not (ticket.channel == "phone")

Names are looked up in nested mappings only (no attribute access, so nothing of Python is
reachable). A missing name is null; comparisons involving null are false, except `x == null`
and `x != null`, which test presence. Only the boolean `true` counts as true. The text
functions (contains, contains_any, startsWith, endsWith) ignore case; `has_keyword` matches
whole words (Chinese as substrings); `matches` takes a regex literal, compiled once.

Every regex that runs on customer text (`matches` and the keyword matcher) runs on RE2, whose
time is linear in the text whatever the pattern, so no policy can stall the router; patterns RE2
cannot run (backreferences, lookaround) are compile errors. And every string a condition reads
is cut to its first `MAX_TEXT_CHARS` characters, so no condition costs more than that much text.
Linear is not cheap for every pattern: RE2's time per character grows with the compiled
program (`\w` alone is about 1,350 instructions, being Unicode), so a pattern over
`MAX_REGEX_PROGRAM_SIZE` instructions is a compile error, and a condition holds at most
`MAX_REGEX_CALLS` calls of `matches`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import re2

MAX_SOURCE_CHARS: Final = 4000
MAX_NESTING: Final = 48
MAX_REGEX_CHARS: Final = 200
MAX_TEXT_CHARS: Final = 20_000
"""Conditions see only the first this-many characters of a string (the ticket's text, a
metadata value): about ten pages, far more than any routing decision needs to read."""
MAX_REGEX_PROGRAM_SIZE: Final = 3_000
r"""RE2 instructions a `matches` pattern may compile to, forward and reverse. A pattern of
127,000 (`[\p{L}]{1,99}\d{1,99}!`) took 180-270 ms per evaluation on 20,000 Chinese characters;
at this size the worst patterns found take a few milliseconds once RE2 has built its automaton
(`\w\w`, `(\w+\s?)*$` pass; `\w{3}` does not)."""
MAX_REGEX_CALLS: Final = 4
"""`matches` calls in one condition: 59 of them cost 2.4 s per ticket."""
REGEX_MAX_MEM: Final = 8 << 20
r"""Bytes RE2 may use per pattern (program and the automaton it caches). RE2's default, set here
so it is a decision: less makes the automaton thrash and fall back to the slower NFA (1 MiB made
`(\w+\s?)*$` 150-300 ms on 20,000 Chinese characters); programs are capped far below it."""

Evaluator = Callable[[Mapping[str, Any]], Any]


class ExpressionError(ValueError):
    """The source is not a valid condition; `position` is the 0-based character offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A condition compiled once; `evaluate` never raises for any mapping of attributes."""

    source: str
    _evaluator: Evaluator

    def evaluate(self, attrs: Mapping[str, Any]) -> bool:
        try:
            return self._evaluator(attrs) is True
        except RecursionError:  # comparing two absurdly deep attribute lists
            return False

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"


def compile_expression(src: str, *, names: Sequence[str] | None = None) -> CompiledExpression:
    """Parse and compile `src`. With `names`, only those top-level names may be used (so a typo
    like `tikcet.priority` is a compile error instead of a silently false condition)."""
    if len(src) > MAX_SOURCE_CHARS:
        raise ExpressionError(
            f"expression is longer than {MAX_SOURCE_CHARS} characters", MAX_SOURCE_CHARS
        )
    parser = _Parser(_tokenize(src), frozenset(names) if names is not None else None)
    node = parser.parse()
    if isinstance(node, _ListNode) or (
        isinstance(node, _Literal) and not isinstance(node.value, bool)
    ):
        raise ExpressionError("a condition must be true or false, not a constant value", 0)
    return CompiledExpression(src, node.compile())


# --- keyword matching (shared with classification) --------------------------------------

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")


# Word characters of Latin-script keywords (an RE2 class body); CJK characters next to a Latin
# keyword are a boundary ("我要refund" holds the keyword "refund").
_WORD_CHAR = r"0-9A-Za-z\x{c0}-\x{24f}_"
# Python's \s for text: exactly the characters str.isspace() accepts (RE2's \s is ASCII only).
_SPACE_CHARS: Final = (
    r"\t-\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
    r"\x{205f}\x{3000}"
)


def contains_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def seen_text(text: str) -> str:
    """The part of `text` a condition reads: its first `MAX_TEXT_CHARS` characters."""
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS]


def _utf8(text: str) -> bytes:
    # RE2 reads UTF-8; a lone surrogate (possible in a Python str) becomes bytes RE2 treats as
    # invalid UTF-8, matched by nothing, instead of an exception in the middle of routing.
    return text.encode("utf-8", "surrogatepass")


def _re2_options(*, capture: bool) -> Any:
    options = re2.Options()
    options.max_mem = REGEX_MAX_MEM
    options.log_errors = False  # a refused pattern is the caller's error, not a log line
    options.never_capture = not capture
    return options


@dataclass(frozen=True, slots=True)
class KeywordMatcher:
    """Finds whole keywords in text: Chinese (and other CJK) keywords as plain substrings, since
    the script has no word boundaries; others case-insensitively at word boundaries, so "down"
    matches "is down!" but not "download". Reads the first `MAX_TEXT_CHARS` characters."""

    keywords: tuple[str, ...]
    _pattern: Any  # a compiled RE2 pattern, or None
    _cjk: tuple[str, ...]

    @classmethod
    def of(cls, keywords: Sequence[str]) -> KeywordMatcher:
        """Raises ExpressionError when the keywords are too many for RE2's memory budget."""
        words = tuple(k.strip() for k in keywords if k.strip())
        cjk = tuple(k.casefold() for k in words if contains_cjk(k))
        latin = [k for k in words if not contains_cjk(k)]
        pattern = None
        if latin:
            try:
                # Longest first, so "log in" wins over "log" when both are keywords.
                alternatives = "|".join(
                    f"[{_SPACE_CHARS}]+".join(map(re2.escape, k.split()))
                    for k in sorted(latin, key=len, reverse=True)
                )
                # RE2 has no lookaround: the characters around the keyword are matched and the
                # keyword captured. Leftmost-first, so it finds the match (?<!w)…(?!w) found.
                pattern = re2.compile(
                    f"(?i)(?:^|[^{_WORD_CHAR}])({alternatives})(?:[^{_WORD_CHAR}]|$)",
                    _re2_options(capture=True),
                )
            except (re2.error, UnicodeEncodeError) as exc:
                message = f"keywords cannot be compiled: {_re2_message(exc)}"
                raise ExpressionError(message, 0) from None
        return cls(words, pattern, cjk)

    def first_match(self, text: str) -> str | None:
        """The first keyword found (CJK ones first), as written in the text; None if none."""
        text = seen_text(text)
        folded = text.casefold()
        for word in self._cjk:
            if word in folded:
                return word
        if self._pattern is not None and (found := self._pattern.search(_utf8(text))):
            return str(found.group(1).decode("utf-8", "surrogatepass"))
        return None


# --- tokenizer ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "str", "num", "name", "op", "end"
    value: Any
    pos: int


_KEYWORD_OPS: Final = {"and": "&&", "or": "||", "not": "!", "in": "in"}
_KEYWORD_LITERALS: Final[dict[str, Any]] = {"true": True, "false": False, "null": None}
_TWO_CHAR_OPS: Final = ("==", "!=", "<=", ">=", "&&", "||")
_ONE_CHAR_OPS: Final = "<>!()[],.-"
_MISTAKES: Final = {
    "=": "use == to compare",
    "&": "use && (or 'and')",
    "|": "use || (or 'or')",
}
_ESCAPES: Final = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "/": "/"}
# The tokenizer reads policy sources (at most MAX_SOURCE_CHARS), never customer text.
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _tokenize(src: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch.isspace():
            i += 1
        elif ch in "\"'":
            value, i_next = _read_string(src, i)
            tokens.append(_Token("str", value, i))
            i = i_next
        elif m := _NUMBER.match(src, i):
            text = m.group(0)
            number = float(text) if m.group(1) or m.group(2) else int(text)
            tokens.append(_Token("num", number, i))
            i = m.end()
        elif m := _NAME.match(src, i):
            word = m.group(0)
            if word in _KEYWORD_OPS:
                tokens.append(_Token("op", _KEYWORD_OPS[word], i))
            else:
                tokens.append(_Token("name", word, i))
            i = m.end()
        elif src.startswith(_TWO_CHAR_OPS, i):
            tokens.append(_Token("op", src[i : i + 2], i))
            i += 2
        elif ch in _ONE_CHAR_OPS:
            tokens.append(_Token("op", ch, i))
            i += 1
        elif ch in _MISTAKES:
            raise ExpressionError(f"unexpected {ch!r}: {_MISTAKES[ch]}", i)
        else:
            raise ExpressionError(f"unexpected character {ch!r}", i)
    tokens.append(_Token("end", None, n))
    return tokens


def _read_string(src: str, start: int) -> tuple[str, int]:
    quote = src[start]
    out: list[str] = []
    i = start + 1
    while i < len(src):
        ch = src[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= len(src):
                break
            esc = src[i + 1]
            if esc == "u":
                digits = src[i + 2 : i + 6]
                if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise ExpressionError(r"\u must be followed by 4 hex digits", i)
                out.append(chr(int(digits, 16)))
                i += 6
                continue
            if esc not in _ESCAPES:
                raise ExpressionError(f"unknown escape \\{esc} in string", i)
            out.append(_ESCAPES[esc])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExpressionError("string is not closed", start)


# --- AST ----------------------------------------------------------------------------------


class _Node:
    pos: int

    def compile(self) -> Evaluator:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Literal(_Node):
    value: Any
    pos: int

    def compile(self) -> Evaluator:
        value = self.value
        return lambda _attrs: value


@dataclass(frozen=True, slots=True)
class _ListNode(_Node):
    items: tuple[_Node, ...]
    pos: int

    def compile(self) -> Evaluator:
        if all(isinstance(item, _Literal) for item in self.items):
            constant = tuple(item.value for item in self.items if isinstance(item, _Literal))
            return lambda _attrs: constant
        parts = [item.compile() for item in self.items]
        return lambda attrs: tuple(part(attrs) for part in parts)


@dataclass(frozen=True, slots=True)
class _Name(_Node):
    path: tuple[str, ...]
    pos: int

    def compile(self) -> Evaluator:
        head, *rest = self.path

        def lookup(attrs: Mapping[str, Any]) -> Any:
            value = attrs.get(head)
            for key in rest:
                if not isinstance(value, Mapping):
                    return None
                value = value.get(key)
            # The one place a condition reads a value: every string it sees is cut here.
            return seen_text(value) if isinstance(value, str) else value

        return lookup


@dataclass(frozen=True, slots=True)
class _Not(_Node):
    operand: _Node
    pos: int

    def compile(self) -> Evaluator:
        operand = self.operand.compile()
        return lambda attrs: operand(attrs) is not True


@dataclass(frozen=True, slots=True)
class _AllOf(_Node):
    operands: tuple[_Node, ...]
    pos: int

    def compile(self) -> Evaluator:
        parts = [operand.compile() for operand in self.operands]
        return lambda attrs: all(part(attrs) is True for part in parts)


@dataclass(frozen=True, slots=True)
class _AnyOf(_Node):
    operands: tuple[_Node, ...]
    pos: int

    def compile(self) -> Evaluator:
        parts = [operand.compile() for operand in self.operands]
        return lambda attrs: any(part(attrs) is True for part in parts)


@dataclass(frozen=True, slots=True)
class _Compare(_Node):
    op: str
    left: _Node
    right: _Node
    pos: int

    def compile(self) -> Evaluator:
        left, right = self.left.compile(), self.right.compile()
        op = self.op
        if op in ("==", "!=") and (_is_null(self.left) or _is_null(self.right)):
            # `x == null` / `x != null` test presence.
            other = right if _is_null(self.left) else left
            if op == "==":
                return lambda attrs: other(attrs) is None
            return lambda attrs: other(attrs) is not None
        if op == "in":
            return lambda attrs: _member(left(attrs), right(attrs))
        if op == "not in":

            def not_member(attrs: Mapping[str, Any]) -> bool:
                a, b = left(attrs), right(attrs)
                return a is not None and b is not None and not _member(a, b)

            return not_member
        compare = _COMPARATORS[op]

        def comparison(attrs: Mapping[str, Any]) -> bool:
            return compare(left(attrs), right(attrs))

        return comparison


@dataclass(frozen=True, slots=True)
class _Call(_Node):
    function: str
    args: tuple[_Node, ...]
    pos: int

    def compile(self) -> Evaluator:
        return _FUNCTIONS[self.function].build(self)


def _is_null(node: _Node) -> bool:
    return isinstance(node, _Literal) and node.value is None


# --- semantics ------------------------------------------------------------------------------


def _kind(value: Any) -> str | None:
    """Values of the same kind compare; anything else compares false rather than raising."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    return None


def _equal(a: Any, b: Any) -> bool:
    kind = _kind(a)
    if a is None or b is None or kind is None or kind != _kind(b):
        return False
    if kind == "list":
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        kind = _kind(a)
        return kind in ("number", "string") and kind == _kind(b) and test(a, b)

    return compare


_COMPARATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": _equal,
    "!=": lambda a, b: a is not None and b is not None and not _equal(a, b),
    "<": _ordered(lambda a, b: a < b),
    "<=": _ordered(lambda a, b: a <= b),
    ">": _ordered(lambda a, b: a > b),
    ">=": _ordered(lambda a, b: a >= b),
}


def _member(item: Any, container: Any) -> bool:
    if item is None:
        return False
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple | set | frozenset):
        return any(_equal(item, element) for element in container)
    return False


@dataclass(frozen=True, slots=True)
class _Function:
    arity: int
    build: Callable[[_Call], Evaluator]


def _text_function(test: Callable[[str, str], bool]) -> Callable[[_Call], Evaluator]:
    def build(call: _Call) -> Evaluator:
        text, needle = (arg.compile() for arg in call.args)

        def apply(attrs: Mapping[str, Any]) -> bool:
            a, b = text(attrs), needle(attrs)
            return isinstance(a, str) and isinstance(b, str) and test(a.casefold(), b.casefold())

        return apply

    return build


def _build_contains_any(call: _Call) -> Evaluator:
    text, needles = (arg.compile() for arg in call.args)

    def apply(attrs: Mapping[str, Any]) -> bool:
        a, bs = text(attrs), needles(attrs)
        if not isinstance(a, str) or not isinstance(bs, list | tuple):
            return False
        folded = a.casefold()
        return any(isinstance(b, str) and b.casefold() in folded for b in bs)

    return apply


def _build_has_keyword(call: _Call) -> Evaluator:
    text_arg, words_arg = call.args
    words = _constant_strings(words_arg, "has_keyword")
    matcher = KeywordMatcher.of(words)
    text = text_arg.compile()

    def apply(attrs: Mapping[str, Any]) -> bool:
        a = text(attrs)
        return isinstance(a, str) and matcher.first_match(a) is not None

    return apply


def _build_matches(call: _Call) -> Evaluator:
    text_arg, pattern_arg = call.args
    if not (isinstance(pattern_arg, _Literal) and isinstance(pattern_arg.value, str)):
        raise ExpressionError("matches() needs its pattern as a string literal", pattern_arg.pos)
    pattern = _compile_regex(pattern_arg.value, pattern_arg.pos)
    text = text_arg.compile()

    def apply(attrs: Mapping[str, Any]) -> bool:
        a = text(attrs)
        return isinstance(a, str) and pattern.search(_utf8(a)) is not None

    return apply


def _build_size(call: _Call) -> Evaluator:
    (arg,) = (a.compile() for a in call.args)

    def apply(attrs: Mapping[str, Any]) -> int | None:
        value = arg(attrs)
        return len(value) if isinstance(value, str | list | tuple | Mapping) else None

    return apply


def _constant_strings(node: _Node, function: str) -> list[str]:
    if isinstance(node, _Literal) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, _ListNode) and all(
        isinstance(item, _Literal) and isinstance(item.value, str) for item in node.items
    ):
        return [item.value for item in node.items if isinstance(item, _Literal)]
    raise ExpressionError(f"{function}() needs a string or a list of string literals", node.pos)


_FUNCTIONS: Final[dict[str, _Function]] = {
    "contains": _Function(2, _text_function(lambda a, b: b in a)),
    "startsWith": _Function(2, _text_function(lambda a, b: a.startswith(b))),
    "endsWith": _Function(2, _text_function(lambda a, b: a.endswith(b))),
    "contains_any": _Function(2, _build_contains_any),
    "has_keyword": _Function(2, _build_has_keyword),
    "matches": _Function(2, _build_matches),
    "size": _Function(1, _build_size),
}


def _compile_regex(pattern: str, pos: int) -> Any:
    r"""`pattern` compiled by RE2 (time linear in the text, whatever the pattern), with Python's
    meaning of \w \d \s (Unicode, so \w matches 退 as before) kept by `_python_classes`."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise ExpressionError(
            f"regular expression is longer than {MAX_REGEX_CHARS} characters", pos
        )
    try:
        compiled = re2.compile(_python_classes(pattern, pos), _re2_options(capture=False))
    except (re2.error, UnicodeEncodeError) as exc:
        raise ExpressionError(
            f"invalid regular expression: {_re2_message(exc)} "
            "(RE2 syntax: no backreferences or lookaround)",
            pos,
        ) from None
    size = max(compiled.programsize, compiled.reverseprogramsize)
    if size > MAX_REGEX_PROGRAM_SIZE:
        raise ExpressionError(
            f"regular expression is too costly to run: it compiles to {size} RE2 instructions, "
            f"more than {MAX_REGEX_PROGRAM_SIZE} (\\w and \\p{{L}} are large "
            "Unicode classes: repeat them less, e.g. \\w+ instead of \\w{50})",
            pos,
        )
    return compiled


def _re2_message(exc: Exception) -> str:
    if isinstance(exc, UnicodeEncodeError):
        return "it holds a lone surrogate character"
    message = exc.args[0] if exc.args else str(exc)
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


# Python's Unicode classes in RE2 terms: (outside a [...] set, inside one). RE2's own \w \d \s
# are ASCII only; these equal Python's for every character assigned in Python's Unicode tables.
_PYTHON_CLASSES: Final[dict[str, tuple[str, str | None]]] = {
    "w": (r"[\p{L}\p{N}_]", r"\p{L}\p{N}_"),
    "W": (r"[^\p{L}\p{N}_]", None),
    "d": (r"\p{Nd}", r"\p{Nd}"),
    "D": (r"\P{Nd}", r"\P{Nd}"),
    "s": (f"[{_SPACE_CHARS}]", _SPACE_CHARS),
    "S": (f"[^{_SPACE_CHARS}]", None),
    "Z": (r"\z", None),  # Python's end of text; RE2 spells it \z
}


def _python_classes(pattern: str, pos: int) -> str:
    r"""Rewrite \w \W \d \D \s \S \Z to their Python meaning in RE2 syntax; everything else is
    left for RE2 to accept or refuse. \b stays RE2's ASCII word boundary (see the README)."""
    out: list[str] = []
    in_set = False
    set_start = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            letter = pattern[i + 1]
            outside, inside = _PYTHON_CLASSES.get(letter, (None, None))
            if not in_set and outside is not None:
                out.append(outside)
            elif in_set and inside is not None:
                out.append(inside)
            elif in_set and letter in "WSZ":
                raise ExpressionError(
                    f"\\{letter} is not supported inside [...]; write [^...] instead", pos
                )
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if not in_set and ch == "[":
            in_set, set_start = True, i
            out.append(ch)
            # A ']' right after '[' or '[^' is a literal member, as in Python.
            if pattern.startswith("^", i + 1):
                out.append("^")
                i += 1
            if pattern.startswith("]", i + 1):
                out.append(r"\]")
                i += 1
        elif in_set and ch == "]" and i > set_start:
            in_set = False
            out.append(ch)
        elif in_set and ch == "[":
            out.append(r"\[")  # Python reads '[' in a set as itself; RE2 might read [:alpha:]
        else:
            out.append(ch)
        i += 1
    return "".join(out)


# --- parser -------------------------------------------------------------------------------


class _Parser:
    """Grammar, loosest first:
    or := and (("||" | "or") and)*        and := unary (("&&" | "and") unary)*
    unary := ("!" | "not") unary | comparison
    comparison := primary (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") primary)?
    primary := literal | "-" number | list | "(" or ")" | name ("." name)* | function "(" args ")"
    """

    def __init__(self, tokens: list[_Token], names: frozenset[str] | None) -> None:
        self._tokens = tokens
        self._i = 0
        self._depth = 0
        self._names = names
        self._regex_calls = 0

    def parse(self) -> _Node:
        if self._peek().kind == "end":
            raise ExpressionError("expression is empty", 0)
        node = self._or()
        token = self._peek()
        if token.kind != "end":
            raise ExpressionError(
                f"unexpected {_describe(token)} after a complete expression", token.pos
            )
        return node

    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _advance(self) -> _Token:
        token = self._tokens[self._i]
        self._i += 1
        return token

    def _at(self, op: str) -> bool:
        token = self._peek()
        return token.kind == "op" and token.value == op

    def _expect(self, op: str, context: str) -> _Token:
        token = self._peek()
        if not self._at(op):
            raise ExpressionError(f"expected {op!r} {context}, found {_describe(token)}", token.pos)
        return self._advance()

    def _nest(self, pos: int) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise ExpressionError(f"expression nests deeper than {MAX_NESTING} levels", pos)

    def _or(self) -> _Node:
        self._nest(self._peek().pos)
        first = self._and()
        operands = [first]
        while self._at("||"):
            self._advance()
            operands.append(self._and())
        self._depth -= 1
        return first if len(operands) == 1 else _AnyOf(tuple(operands), first.pos)

    def _and(self) -> _Node:
        first = self._unary()
        operands = [first]
        while self._at("&&"):
            self._advance()
            operands.append(self._unary())
        return first if len(operands) == 1 else _AllOf(tuple(operands), first.pos)

    def _unary(self) -> _Node:
        if self._at("!"):
            token = self._advance()
            if self._at("in"):
                raise ExpressionError("'not in' needs a value before it", token.pos)
            self._nest(token.pos)
            operand = self._unary()
            self._depth -= 1
            return _Not(operand, token.pos)
        return self._comparison()

    def _comparison(self) -> _Node:
        left = self._primary()
        token = self._peek()
        op = self._comparison_operator()
        if op is None:
            return left
        right = self._primary()
        if self._comparison_operator() is not None:
            raise ExpressionError(
                "comparisons cannot be chained; join them with && or ||",
                self._tokens[self._i - 1].pos,
            )
        return _Compare(op, left, right, token.pos)

    def _comparison_operator(self) -> str | None:
        token = self._peek()
        if token.kind != "op":
            return None
        if token.value in ("==", "!=", "<", "<=", ">", ">=", "in"):
            self._advance()
            return str(token.value)
        if token.value == "!" and self._tokens[self._i + 1].value == "in":
            self._i += 2
            return "not in"
        return None

    def _primary(self) -> _Node:
        token = self._peek()
        if token.kind in ("str", "num"):
            self._advance()
            return _Literal(token.value, token.pos)
        if token.kind == "name":
            return self._name_or_call()
        if self._at("-"):
            self._advance()
            number = self._peek()
            if number.kind != "num":
                raise ExpressionError("'-' must be followed by a number", token.pos)
            self._advance()
            return _Literal(-number.value, token.pos)
        if self._at("("):
            self._advance()
            node = self._or()
            self._expect(")", f"to close the '(' at position {token.pos}")
            return node
        if self._at("["):
            return self._list()
        raise ExpressionError(f"expected a value, found {_describe(token)}", token.pos)

    def _list(self) -> _Node:
        start = self._advance()
        items: list[_Node] = []
        while not self._at("]"):
            items.append(self._or())
            if not self._at(","):
                break
            self._advance()
        self._expect("]", f"to close the list at position {start.pos}")
        return _ListNode(tuple(items), start.pos)

    def _name_or_call(self) -> _Node:
        token = self._advance()
        name = str(token.value)
        if name in _KEYWORD_LITERALS:
            return _Literal(_KEYWORD_LITERALS[name], token.pos)
        if self._at("("):
            return self._call(token)
        path = [name]
        while self._at("."):
            self._advance()
            part = self._peek()
            if part.kind != "name":
                raise ExpressionError(
                    f"expected a field name after '.', found {_describe(part)}", part.pos
                )
            self._advance()
            if self._at("("):
                raise ExpressionError(
                    f"method calls are not supported; write {part.value}({'.'.join(path)}, ...)",
                    part.pos,
                )
            path.append(str(part.value))
        if self._names is not None and name not in self._names:
            known = ", ".join(sorted(self._names))
            raise ExpressionError(f"unknown name {name!r}; known names: {known}", token.pos)
        return _Name(tuple(path), token.pos)

    def _call(self, token: _Token) -> _Node:
        name = str(token.value)
        function = _FUNCTIONS.get(name)
        if function is None:
            known = ", ".join(sorted(_FUNCTIONS))
            raise ExpressionError(f"unknown function {name!r}; known functions: {known}", token.pos)
        self._advance()  # (
        args: list[_Node] = []
        while not self._at(")"):
            args.append(self._or())
            if not self._at(","):
                break
            self._advance()
        self._expect(")", f"to close the call of {name}() at position {token.pos}")
        if len(args) != function.arity:
            raise ExpressionError(
                f"{name}() takes {function.arity} argument{'s' if function.arity != 1 else ''}, "
                f"got {len(args)}",
                token.pos,
            )
        if name == "matches":
            self._regex_calls += 1
            if self._regex_calls > MAX_REGEX_CALLS:
                raise ExpressionError(
                    f"a condition may call matches() at most {MAX_REGEX_CALLS} times", token.pos
                )
        call = _Call(name, tuple(args), token.pos)
        call.compile()  # surfaces argument errors (bad regex, ...) at compile time
        return call


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of expression"
    if token.kind == "str":
        return f"string {token.value!r}"
    return repr(str(token.value))
