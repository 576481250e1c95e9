"""Property tests: valid pages read as prometheus_client reads them; nothing makes us raise.

Three properties, each kept to about a second:
(a) pages generated from the text-format grammar (hostile-but-valid label values, every
    value spelling, whitespace variants, timestamps, comments, CRLF) agree with
    prometheus_client on every prefixed sample, with no bad line;
(b) arbitrary bytes or text never raise and always give a well-formed Exposition;
(c) lines built from the format's punctuation read the same through the memoised fast path
    as through the strict slow path applied line by line (the fast path is only a shortcut).
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpexporter.promtext import exposition
from kpexporter.promtext.exposition import (
    DEFAULT_PREFIXES,
    MAX_ERRORS,
    Exposition,
    LabelSet,
    read_exposition,
)
from tests.fixtures import Samples, flat, reference_samples, same_samples

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PAGES = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- (a) valid pages ----------------------------------------------------------------------

NAME_CHARS = string.ascii_letters + string.digits + "_:"
metric_names = st.builds(
    str.__add__,
    st.sampled_from(
        ["kubeproxy_", "kubeproxy_sync_", "process_start_time_seconds", "go_", "kubeproxy", "a"]
    ),
    st.text(NAME_CHARS, max_size=10),
)
label_names = st.sampled_from(["le", "ip_family", "table", "quantile"]) | st.from_regex(
    r"(?:[a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9_]{0,6}", fullmatch=True
)  # no "__" names: prometheus_client rejects those reserved names (Prometheus reads them)
# Raw control characters (tab and the escaped newline aside) make a line malformed on purpose
# (prometheus_client keeps them): tests/faults/test_series_limits.py covers that rule.
RAW_CONTROLS = "".join(map(chr, [*range(0x09), *range(0x0B, 0x20), 0x7F]))
label_values = st.text(st.characters(exclude_categories=("Cs",),
                                     exclude_characters=RAW_CONTROLS),
                       max_size=10) | st.sampled_from(
    ['"', "\\", "\n", "{}", ",", "=", 'a,b="c"}', "\\n", "# x", "", "+Inf", " "]
)
value_texts = st.one_of(
    st.integers(-(10**18), 10**18).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.17g}"),
    st.sampled_from(
        ["+Inf", "-Inf", "Inf", "inf", "-inf", "NaN", "nan", "Infinity", ".5", "5.", "+3",
         "-0", "1e3", "1E-3", "007", "1.5e+09"]
    ),
)  # fmt: skip
blanks = st.sampled_from([" ", "\t", "  ", " \t"])
optional_blanks = st.sampled_from(["", "", " ", "\t"])


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@st.composite
def sample_lines(draw: st.DrawFn) -> tuple[str, LabelSet, str]:
    """One valid sample line: (name, label set as read back, line text)."""
    name = draw(metric_names)
    names = draw(st.lists(label_names, max_size=3, unique=True))
    pairs = [(n, draw(label_values)) for n in names]
    text = name
    if pairs or draw(st.booleans()):
        ws = optional_blanks
        body = ",".join(
            f'{draw(ws)}{n}{draw(ws)}={draw(ws)}"{escape(v)}"{draw(ws)}' for n, v in pairs
        )
        if pairs and draw(st.booleans()):
            body += ","  # trailing comma
        text += draw(optional_blanks) + "{" + body + "}" + draw(optional_blanks)
    text += draw(blanks) + draw(value_texts)
    if draw(st.booleans()):
        text += draw(blanks) + str(draw(st.integers(0, 2**53)))
    if draw(st.integers(0, 9)) == 0:
        text = draw(blanks) + text  # leading blanks
    return name, tuple(sorted(pairs)), text


@st.composite
def meta_lines(draw: st.DrawFn) -> str:
    """HELP, TYPE, other comments and blank lines (TYPE handled by the page builder)."""
    kind = draw(st.sampled_from(["help", "comment", "blank"]))
    if kind == "help":
        text = draw(st.text(string.ascii_letters + " \\.[]()", max_size=20))
        return f"# HELP {draw(metric_names)} {text.replace(chr(92), chr(92) * 2)}"
    if kind == "comment":
        return "# " + draw(st.sampled_from(["", "a comment", "kubeproxy_ said so", "x y z"]))
    return draw(st.sampled_from(["", "   ", "\t"]))


@st.composite
def valid_pages(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A page and the TYPE of each prefixed family it declares."""
    lines: list[str] = []
    seen: set[tuple[str, LabelSet]] = set()
    typed: dict[str, str] = {}
    for _ in range(draw(st.integers(0, 25))):
        if draw(st.integers(0, 3)) == 0:
            lines.append(draw(meta_lines()))
            continue
        name, key, text = draw(sample_lines())
        if (name, key) in seen:
            continue  # a duplicate series is not valid (Prometheus fails the scrape)
        seen.add((name, key))
        if name not in typed and draw(st.integers(0, 2)) == 0:
            kinds = ["gauge", "untyped", "summary", "histogram"]
            kind = draw(st.sampled_from([*kinds, "counter"] if name.endswith("_total") else kinds))
            typed[name] = kind
            lines.append(f"#{draw(blanks)}TYPE{draw(blanks)}{name}{draw(blanks)}{kind}")
        lines.append(text)
    newline = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    page = newline.join(lines) + draw(st.sampled_from(["", newline]))
    return page, {n: k for n, k in typed.items() if n.startswith(DEFAULT_PREFIXES)}


@PAGES
@given(valid_pages())
def test_valid_pages_read_as_prometheus_client_reads_them(case: tuple[str, dict[str, str]]) -> None:
    page, types = case
    exp = read_exposition(page.encode())
    assert exp.bad_lines == 0, exp.errors
    assert same_samples(flat(exp.samples), reference_samples(page, DEFAULT_PREFIXES))
    assert exp.types == types
    again = read_exposition(page)  # str input, warm memos: same answer
    assert same_samples(flat(again.samples), flat(exp.samples))


# --- (b) anything at all ------------------------------------------------------------------


def assert_well_formed(exp: Exposition) -> None:
    assert isinstance(exp, Exposition)
    assert exp.bad_lines >= len(exp.errors) and len(exp.errors) <= MAX_ERRORS
    for name, series in exp.samples.items():
        assert name.startswith(DEFAULT_PREFIXES) and series
        for key, value in series.items():
            names = [k for k, _ in key]
            assert names == sorted(set(names))
            assert isinstance(value, float)
    for error in exp.errors:
        assert error.startswith("line ") and "\n" not in error.split(":", 1)[0]


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert_well_formed(read_exposition(data))


fragments = st.text(alphabet='{}",=\\ \t#\r0123456789.eE+-_:lpqI nfNa\x00é', max_size=30)
hostile_lines = st.builds(
    str.__add__,
    st.sampled_from(["", " ", "\t", "# TYPE ", "#\tTYPE\t", "x"]),
    st.builds(str.__add__, st.sampled_from([*DEFAULT_PREFIXES, "kubeproxy", "go_"]), fragments),
)


@FAST
@given(st.lists(hostile_lines | fragments, max_size=20), st.sampled_from(["\n", "\r\n"]))
def test_hostile_text_never_raises(lines: list[str], newline: str) -> None:
    assert_well_formed(read_exposition(newline.join(lines)))


# --- (c) the fast path is only a shortcut -------------------------------------------------


def slow_reading(page: str) -> tuple[Samples, int]:
    """The strict slow path applied to each of our lines, first series kept."""
    out: Samples = {}
    bad = 0
    for raw in page.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.lstrip(" \t").startswith(DEFAULT_PREFIXES):
            continue
        try:
            parsed = exposition._slow_sample(line, DEFAULT_PREFIXES)
        except ValueError:
            bad += 1
            continue
        if parsed is None:
            continue
        name, key, value = parsed
        if (name, key) in out:
            bad += 1
        else:
            out[(name, key)] = value
    return out, bad


sample_ish = st.builds(
    str.__add__,
    st.sampled_from(["", "", "", " "]),
    st.builds(
        str.__add__,
        st.sampled_from(["kubeproxy_a", "kubeproxy_b_bucket", "process_start_time_seconds"]),
        st.text(alphabet='{}",=\\ \t\r019.e+-_lInfa', max_size=24),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(sample_ish, max_size=12), st.booleans())
def test_fast_path_agrees_with_slow_path(lines: list[str], cold: bool) -> None:
    page = "\n".join(lines)
    if cold:
        exposition.reset_memos()
    exp = read_exposition(page)
    expected, bad = slow_reading(page)
    assert same_samples(flat(exp.samples), expected)
    assert exp.bad_lines == bad
