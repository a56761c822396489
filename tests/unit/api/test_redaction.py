"""The redactor: what it masks, what it leaves alone, and that nothing it masks survives."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.parse
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flux.engine.failures import error_info, wrap_execution, wrap_retry
from flux.masked_output import MaskedStream, masked_std_streams
from flux.redaction import MASK, MIN_LENGTH, Redactor

SECRET = "s3cr3t-t0ken"


def test_masks_every_occurrence_in_text() -> None:
    redactor = Redactor([SECRET])
    assert redactor.text(f"a {SECRET} b {SECRET}") == f"a {MASK} b {MASK}"


def test_without_secrets_values_come_back_as_the_same_objects() -> None:
    value = {"a": [1, "two", {"three": None}], "b": ("x",)}
    assert Redactor().redact(value) is value
    assert Redactor([SECRET]).redact(value) is value
    assert Redactor([SECRET]).text("plain") == "plain"


def test_json_like_values_are_masked_recursively_keys_included() -> None:
    redactor = Redactor([SECRET])
    value = {"k": [f"x{SECRET}", 3, {SECRET: (SECRET, True)}], "n": 1.5}
    assert redactor.redact(value) == {"k": [f"x{MASK}", 3, {MASK: [MASK, True]}], "n": 1.5}


def test_keys_that_mask_to_the_same_text_are_all_kept() -> None:
    redactor = Redactor([SECRET, "other-secret"])
    masked = redactor.redact({SECRET: 1, "other-secret": 2, f"{MASK}#2": 3})
    assert sorted(masked.values()) == [1, 2, 3]
    assert not any(SECRET in k or "other-secret" in k for k in masked)


def test_error_infos_are_masked_with_their_causes() -> None:
    inner = error_info(ValueError(f"bad token {SECRET}"))
    info = wrap_execution(wrap_retry(inner, 3))
    masked = Redactor([SECRET]).redact(info)
    assert SECRET not in json.dumps(masked)
    assert masked["cause"]["cause"]["message"] == f"bad token {MASK}"


def test_longest_secret_is_masked_whole() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.text("xabcdefghx") == f"x{MASK}x"


def test_short_secrets_mask_only_whole_strings() -> None:
    redactor = Redactor(["ab"])
    assert redactor.text("ab") == MASK
    assert redactor.redact({"ab": ["ab", "cab"]}) == {MASK: [MASK, "cab"]}
    assert redactor.text("a table about") == "a table about"


def test_empty_secret_masks_nothing() -> None:
    redactor = Redactor([""])
    assert not redactor
    assert redactor.text("") == ""


def test_multi_line_secret_is_masked_whole_and_per_line() -> None:
    key = "-----BEGIN KEY-----\nQUJDREVGR0hJSktM\n-----END KEY-----"
    redactor = Redactor([key])
    assert redactor.text(f"key: {key}!") == f"key: {MASK}!"
    assert redactor.text("line 2 is QUJDREVGR0hJSktM") == f"line 2 is {MASK}"
    assert "\n" not in redactor.text(key)


def test_common_encodings_are_masked() -> None:
    secret = 'p@ss w/"quote"\né'
    redactor = Redactor([secret])
    raw = secret.encode()
    forms = [
        json.dumps(secret),
        json.dumps(secret, ensure_ascii=False),
        repr(secret),
        repr({"password": secret}),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]
    for form in forms:
        masked = redactor.text(f"<{form}>")
        assert masked != f"<{form}>", form
        assert MASK in masked


def test_masking_that_joins_text_into_a_secret_masks_again() -> None:
    redactor = Redactor(["a***"])
    assert "a***" not in redactor.text("aa***")


def test_values_can_be_added_later() -> None:
    redactor = Redactor()
    assert redactor.text(SECRET) == SECRET
    redactor.add([SECRET])
    assert redactor.text(SECRET) == MASK


def test_secrets_with_undecodable_bytes_from_the_environment() -> None:
    secret = b"tok\xffen".decode("utf-8", "surrogateescape")
    assert Redactor([secret]).text(f"x{secret}x") == f"x{MASK}x"


# ------------------------------------------------------------------ properties

secrets = st.text(min_size=MIN_LENGTH, max_size=30).filter(lambda s: s.strip())
texts = st.text(max_size=60)


@settings(max_examples=300)
@given(secret=secrets, before=texts, after=texts)
def test_output_never_contains_the_secret(secret: str, before: str, after: str) -> None:
    masked = Redactor([secret]).text(before + secret + after)
    assert secret not in masked


@settings(max_examples=300)
@given(secret=secrets, text=texts)
def test_text_without_the_secret_or_its_forms_is_unchanged(secret: str, text: str) -> None:
    redactor = Redactor([secret])
    if not redactor.contains_secret(text):
        assert redactor.text(text) is text
    if secret not in text and all(form not in text for form in _forms(secret)):
        assert redactor.text(text) == text


def _forms(secret: str) -> list[str]:
    from flux.redaction import secret_forms

    return sorted(secret_forms(secret))


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200)
@given(secret=secrets, value=json_values, where=st.integers(0, 3))
def test_json_values_never_keep_the_secret(secret: str, value: Any, where: int) -> None:
    planted = [value, f"x{secret}"] if where == 0 else {f"{secret}y": value, "z": [secret]}
    masked = Redactor([secret]).redact(planted)
    assert not any(secret in text for text in _strings(masked))


def _strings(value: Any) -> list[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    return []


# ------------------------------------------------------------------ streams


def test_stream_masks_complete_lines_and_the_rest_on_flush() -> None:
    out = io.StringIO()
    stream = MaskedStream(out, Redactor([SECRET]))
    stream.write(f"one {SECRET[:4]}")
    assert out.getvalue() == ""  # held back until the line is complete
    stream.write(f"{SECRET[4:]} two\nthree {SECRET}")
    assert out.getvalue() == f"one {MASK} two\n"
    stream.flush()
    assert out.getvalue() == f"one {MASK} two\nthree {MASK}"


def test_stream_without_secrets_passes_writes_through() -> None:
    out = io.StringIO()
    stream = MaskedStream(out, Redactor())
    stream.write("partial")
    assert out.getvalue() == "partial"


def test_std_streams_are_masked_and_restored(capsys: Any) -> None:
    redactor = Redactor([SECRET])
    with masked_std_streams(redactor):
        print(f"printed {SECRET}")
        import sys

        print(f"error {SECRET}", file=sys.stderr)
        thread = threading.Thread(target=print, args=(f"thread {SECRET}",))
        thread.start()
        thread.join()
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert f"printed {MASK}" in captured.out
    assert f"thread {MASK}" in captured.out
    assert f"error {MASK}" in captured.err
