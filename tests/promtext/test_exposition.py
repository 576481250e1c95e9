"""read_exposition against prometheus_client on real pages, and on the hostile cases."""

from __future__ import annotations

import math
import re

import pytest

from kpexporter.promtext.exposition import (
    DEFAULT_PREFIXES,
    MAX_ERRORS,
    Exposition,
    read_exposition,
    reset_memos,
)
from tests.fixtures import (
    ALL,
    V1_8,
    V1_21,
    V1_21_USERSPACE,
    V1_30,
    fixture_bytes,
    fixture_text,
    flat,
    reference_samples,
    same_samples,
)

KP = "kubeproxy_"


def kp_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(KP)]


# --- real pages ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_fixture_matches_prometheus_client(name: str) -> None:
    data = fixture_bytes(name)
    exp = read_exposition(data)
    assert exp.bad_lines == 0 and exp.errors == []
    assert same_samples(flat(exp.samples), reference_samples(fixture_text(name), DEFAULT_PREFIXES))


@pytest.mark.parametrize("name", ALL)
def test_fixture_bytes_str_and_cold_memos_agree(name: str) -> None:
    data = fixture_bytes(name)
    warm = read_exposition(data)
    reset_memos()
    cold = read_exposition(data.decode())
    assert same_samples(flat(cold.samples), flat(warm.samples))
    assert cold.types == warm.types


@pytest.mark.parametrize("prefixes", [("go_",), ("rest_client_", "apiserver_"), ("",)])
def test_other_prefixes_match_prometheus_client(prefixes: tuple[str, ...]) -> None:
    """Summaries, many labels, a whole page (prefix ""): the reader is not kube-proxy-only."""
    exp = read_exposition(fixture_bytes(V1_30), prefixes)
    assert exp.bad_lines == 0
    assert same_samples(flat(exp.samples), reference_samples(fixture_text(V1_30), prefixes))


def test_v1_30_types_and_counts() -> None:
    exp = read_exposition(fixture_bytes(V1_30))
    assert exp.types["kubeproxy_network_programming_duration_seconds"] == "histogram"
    assert exp.types["kubeproxy_sync_proxy_rules_endpoint_changes_total"] == "counter"
    assert exp.types["process_start_time_seconds"] == "gauge"
    assert all(name.startswith(DEFAULT_PREFIXES) for name in exp.types)
    buckets = exp.samples["kubeproxy_network_programming_duration_seconds_bucket"]
    assert len(buckets) == 82 and (("le", "0"),) in buckets


def test_userspace_page_has_no_kubeproxy_series() -> None:
    exp = read_exposition(fixture_bytes(V1_21_USERSPACE))
    assert list(exp.samples) == ["process_start_time_seconds"]
    assert exp.samples["process_start_time_seconds"] == {(): 1641523398.13}


def test_v1_8_microsecond_histogram_is_read() -> None:
    exp = read_exposition(fixture_bytes(V1_8))
    buckets = exp.samples["kubeproxy_sync_proxy_rules_latency_microseconds_bucket"]
    assert buckets[(("le", "1.024e+06"),)] == 364.0
    assert exp.samples["kubeproxy_sync_proxy_rules_latency_microseconds_sum"] == {(): 1.95825e07}


# --- label shapes -------------------------------------------------------------------------


def test_le_written_two_ways_is_two_series() -> None:
    page = 'kubeproxy_h_bucket{le="1"} 3\nkubeproxy_h_bucket{le="1.0"} 4\n'
    exp = read_exposition(page)
    assert exp.samples["kubeproxy_h_bucket"] == {(("le", "1"),): 3.0, (("le", "1.0"),): 4.0}
    assert exp.bad_lines == 0


def with_ip_family(text: str, families: tuple[str, ...]) -> str:
    """A 1.33-style page: every kubeproxy_ sample once per IP family, ip_family first."""
    out: list[str] = []
    for line in text.splitlines():
        if not line.startswith(KP):
            out.append(line)
            continue
        name, brace, rest = line.partition("{")
        if not brace:
            name, _, rest = line.partition(" ")
            rest = "} " + rest
        out.extend(f'{name}{{ip_family="{fam}",{rest}'.replace(",}", "}") for fam in families)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("families", [("IPv4",), ("IPv4", "IPv6")])
def test_ip_family_pages_match_prometheus_client(families: tuple[str, ...]) -> None:
    page = with_ip_family(fixture_text(V1_30), families)
    exp = read_exposition(page.encode())
    assert exp.bad_lines == 0
    assert same_samples(flat(exp.samples), reference_samples(page, DEFAULT_PREFIXES))
    sync = exp.samples["kubeproxy_sync_proxy_rules_duration_seconds_bucket"]
    assert (("ip_family", "IPv4"), ("le", "0.001")) in sync
    assert len(sync) == 16 * len(families)
    last = exp.samples["kubeproxy_sync_proxy_rules_last_timestamp_seconds"]
    assert set(last) == {(("ip_family", fam),) for fam in families}


def test_labels_are_sorted_by_name_whatever_the_page_order() -> None:
    exp = read_exposition('kubeproxy_x{table="nat",ip_family="IPv6",b="1"} 7\n')
    assert exp.samples["kubeproxy_x"] == {
        (("b", "1"), ("ip_family", "IPv6"), ("table", "nat")): 7.0
    }


def test_escaped_and_structural_label_values() -> None:
    page = (
        'kubeproxy_a{path="C:\\\\dir",msg="say \\"hi\\"\\nbye",odd="{},=#"} 1\n'
        'kubeproxy_b{raw="tab\\there",end="\\\\"} 2\n'
        'kubeproxy_c{x="a\\\\\\"b"} 3\n'
    )
    exp = read_exposition(page)
    assert exp.bad_lines == 0, exp.errors
    assert exp.samples["kubeproxy_a"] == {
        (("msg", 'say "hi"\nbye'), ("odd", "{},=#"), ("path", "C:\\dir")): 1.0
    }
    # an unknown escape stays as written, as in Prometheus and prometheus_client
    assert exp.samples["kubeproxy_b"] == {(("end", "\\"), ("raw", "tab\\there")): 2.0}
    assert exp.samples["kubeproxy_c"] == {(("x", 'a\\"b'),): 3.0}
    assert same_samples(flat(exp.samples), reference_samples(page, DEFAULT_PREFIXES))


def test_whitespace_variants_timestamps_and_trailing_comma() -> None:
    page = (
        'kubeproxy_a{ le = "1" , x="y" , } 1 1700000000000\n'
        "kubeproxy_b\t2\t1700000000000\n"
        "   kubeproxy_c 3\n"
        'kubeproxy_d {le="2"}4\n'
        'kubeproxy_e{le="3"}   5   \n'
        "\t# TYPE kubeproxy_e histogram\n"
        "kubeproxy_f{} 6\n"
    )
    exp = read_exposition(page)
    assert exp.bad_lines == 0, exp.errors
    assert same_samples(flat(exp.samples), reference_samples(page, DEFAULT_PREFIXES))
    assert exp.types == {"kubeproxy_e": "histogram"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("+Inf", math.inf),
        ("-Inf", -math.inf),
        ("Inf", math.inf),
        ("infinity", math.inf),
        ("NaN", math.nan),
        ("nan", math.nan),
        ("1.5e+09", 1.5e9),
        (".5", 0.5),
        ("5.", 5.0),
        ("-0", -0.0),
        ("007", 7.0),
        ("1e-400", 0.0),
    ],
)
def test_values_follow_go(text: str, value: float) -> None:
    exp = read_exposition(f'kubeproxy_v {text}\nkubeproxy_w{{a="b"}} {text}\n')
    assert exp.bad_lines == 0
    for got in (exp.samples["kubeproxy_v"][()], exp.samples["kubeproxy_w"][(("a", "b"),)]):
        assert got == value or (math.isnan(got) and math.isnan(value))


@pytest.mark.parametrize("text", ["1_000", "0x1p-2", "1e400", "+nan", "1.2.3", "abc", "١"])
def test_values_go_rejects_are_bad_lines(text: str) -> None:
    """Python's float() takes these (or prometheus_client would); Go or Prometheus do not."""
    exp = read_exposition(f'kubeproxy_v {text}\nkubeproxy_w{{a="b"}} {text}\nkubeproxy_ok 1\n')
    assert exp.bad_lines == 2
    assert flat(exp.samples) == {("kubeproxy_ok", ()): 1.0}


# --- malformed input degrades, never fails ------------------------------------------------

BAD_LINES = [
    ("kubeproxy_bad_value 1.2.3", "bad value"),
    ('kubeproxy_unterminated{le="1 2', "unterminated"),
    ('kubeproxy_dup_label{a="1",a="2"} 1', "duplicate label"),
    ("kubeproxy_bad-name 1", "invalid metric name"),
    ('kubeproxy_network_programming_duration_seconds_bucket{le="0.', "unterminated"),
    ('kubeproxy_no_value{le="1"}', "no value"),
    ("kubeproxy_bad_ts 1 12:00", "bad timestamp"),
    ("kubeproxy_three 1 2 3", "bad value"),
    ('kubeproxy_no_comma{a="1" b="2"} 1', "malformed label set"),
    ("kubeproxy_empty_comma{,} 1", "malformed label set"),
    ("# TYPE kubeproxy_sync_proxy_rules_duration_seconds gaugeish", "invalid TYPE"),
]


def test_malformed_lines_in_the_middle_are_skipped_and_counted() -> None:
    clean = fixture_text(V1_30)
    lines = clean.splitlines()
    middle = lines.index(kp_lines(clean)[40])
    page_lines = lines[:middle] + [bad for bad, _ in BAD_LINES] + lines[middle:]
    exp = read_exposition("\n".join(page_lines) + "\n")
    assert exp.bad_lines == len(BAD_LINES)
    assert len(exp.errors) == MAX_ERRORS
    for number, (message, (_, why)) in enumerate(zip(exp.errors, BAD_LINES, strict=False)):
        assert message.startswith(f"line {middle + number + 1}: "), message
        assert why in message
    assert same_samples(flat(exp.samples), flat(read_exposition(clean).samples))


def test_duplicate_series_keeps_the_first() -> None:
    page = 'kubeproxy_x{a="1"} 1\nkubeproxy_x{a="1"} 2\nkubeproxy_y 3\nkubeproxy_y 4\n'
    exp = read_exposition(page)
    assert flat(exp.samples) == {("kubeproxy_x", (("a", "1"),)): 1.0, ("kubeproxy_y", ()): 3.0}
    assert exp.bad_lines == 2
    assert exp.errors[0].startswith("line 2: duplicate series kubeproxy_x")
    assert exp.errors[1].startswith("line 4: duplicate series kubeproxy_y")


def test_second_type_line_keeps_the_first() -> None:
    page = "# TYPE kubeproxy_x gauge\n# TYPE kubeproxy_x counter\nkubeproxy_x 1\n"
    exp = read_exposition(page)
    assert exp.types == {"kubeproxy_x": "gauge"} and exp.bad_lines == 1


def test_foreign_lines_are_not_looked_at() -> None:
    page = (
        "go_bad_value 1.2.3\n"
        "# TYPE go_x not_a_type\n"
        'go_info{version="kubeproxy_ in a value"} 1\n'
        "# HELP go_y mentions kubeproxy_sync_proxy_rules_duration_seconds 1\n"
        "kubeproxy_x 1\n"
        "xkubeproxy_y 2\n"
        'rest_client{x="\nkubeproxy_z 3\n'
    )
    exp = read_exposition(page)
    assert flat(exp.samples) == {("kubeproxy_x", ()): 1.0, ("kubeproxy_z", ()): 3.0}
    assert exp.bad_lines == 0


def test_interleaved_families_are_read_the_same() -> None:
    clean = fixture_text(V1_30)
    ours = [*kp_lines(clean), "process_start_time_seconds 1.71404025895e+09"]
    foreign = [line for line in clean.splitlines() if line.startswith("go_")]
    mixed: list[str] = []
    for i, line in enumerate(ours):
        mixed.append(foreign[i % len(foreign)] if i % 3 else "# HELP go_z kubeproxy_ said")
        mixed.append(line)
    mixed.append('go_last{a="kubeproxy_"} 1')
    exp = read_exposition("\n".join(mixed))
    assert exp.bad_lines == 0
    assert same_samples(flat(exp.samples), flat(read_exposition(clean).samples))


def test_crlf_line_endings_are_accepted() -> None:
    """Prometheus would reject the \\r; we read the page as if it had plain newlines."""
    clean = fixture_text(V1_30)
    exp = read_exposition(clean.replace("\n", "\r\n").encode())
    assert exp.bad_lines == 0
    assert same_samples(flat(exp.samples), flat(read_exposition(clean).samples))
    assert exp.types == read_exposition(clean).types


def test_lone_carriage_return_spoils_only_its_line() -> None:
    exp = read_exposition("kubeproxy_a 1\rkubeproxy_b 2\nkubeproxy_c 3")
    assert flat(exp.samples) == {("kubeproxy_c", ()): 3.0} and exp.bad_lines == 1


@pytest.mark.parametrize("page", [b"", "", "\n\n\n", "# just a comment\n", "kubeproxy_"])
def test_empty_and_near_empty_pages(page: bytes | str) -> None:
    exp = read_exposition(page)
    assert exp.samples == {} and exp.types == {}


def test_garbage_page() -> None:
    exp = read_exposition(b'\x00\x01<html>kubeproxy_ \xff\xfe{{{"""}}}\nkubeproxy_{{ 1\n' * 50)
    assert isinstance(exp, Exposition) and exp.samples == {}
    # the "<html>kubeproxy_" lines are not ours (a line is ours when it starts with a prefix)
    assert exp.bad_lines == 50 and len(exp.errors) == MAX_ERRORS


def test_non_utf8_bytes_spoil_only_their_line() -> None:
    page = b'kubeproxy_a{v="caf\xe9"} 1\nkubeproxy_b{v="\xff"} 2\nkubeproxy_c \xff\nkubeproxy_d 4\n'
    exp = read_exposition(page)
    assert flat(exp.samples) == {
        ("kubeproxy_a", (("v", "caf\ufffd"),)): 1.0,
        ("kubeproxy_b", (("v", "\ufffd"),)): 2.0,
        ("kubeproxy_d", ()): 4.0,
    }
    assert exp.bad_lines == 1


def test_errors_are_capped_but_all_counted() -> None:
    exp = read_exposition("".join(f"kubeproxy_x{i} oops\n" for i in range(50)))
    assert exp.bad_lines == 50 and len(exp.errors) == MAX_ERRORS
    assert [int(re.match(r"line (\d+):", e).group(1)) for e in exp.errors] == [1, 2, 3, 4, 5]


def test_page_without_final_newline() -> None:
    data = fixture_bytes(V1_21)
    assert not data.endswith(b"\n")
    exp = read_exposition(data + b"\nkubeproxy_zz 9")
    assert exp.samples["kubeproxy_zz"] == {(): 9.0}
