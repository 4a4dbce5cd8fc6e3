"""The Bot API client's HTTP answer reader (`telegram.read_answer`), on answers given as bytes."""

from __future__ import annotations

import io

import pytest

from python419.products.telegram import MAX_BODY, MAX_HEADERS, BadAnswer, read_answer

BODY = b'{"ok":true,"result":{"message_id":1}}'


def answer(raw: bytes) -> tuple[int, bytes, bool]:
    return read_answer(io.BufferedReader(io.BytesIO(raw)))


def test_content_length_on_a_kept_connection() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(BODY),
        BODY,
    )
    assert answer(raw + b"HTTP/1.1 200 OK\r\n") == (200, BODY, False)  # what follows is not read


def test_chunks_with_extensions_and_trailers() -> None:
    raw = (
        b"HTTP/1.1 429 Too Many Requests\r\ntransfer-encoding: Chunked\r\n\r\n"
        b"5;name=value\r\n" + BODY[:5] + b"\r\n"
        b"%x\r\n" % (len(BODY) - 5) + BODY[5:] + b"\r\n"
        b"0\r\nX-Trailer: 1\r\n\r\n"
    )
    assert answer(raw) == (429, BODY, False)


def test_interim_answers_are_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n"
    raw += b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}"
    assert answer(raw) == (401, b"{}", False)


@pytest.mark.parametrize(
    ("head", "closes"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", True),
        (b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive\r\n", False),
        (b"HTTP/1.0 200 OK\r\n", True),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n", False),
    ],
)
def test_who_closes(head: bytes, closes: bool) -> None:
    assert answer(head + b"Content-Length: 2\r\n\r\n{}") == (200, b"{}", closes)


def test_no_length_reads_to_the_end_and_closes() -> None:
    assert answer(b"HTTP/1.1 502 Bad Gateway\r\n\r\n" + BODY) == (502, BODY, True)


def test_no_body_for_204_and_304() -> None:
    assert answer(b"HTTP/1.1 204 No Content\r\n\r\n" + BODY) == (204, b"", False)
    assert answer(b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n") == (304, b"", True)


def test_one_length_said_twice_is_one_length() -> None:
    assert answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}") == (200, b"{}", False)
    assert answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n{}") == (
        200,
        b"{}",
        False,
    )


def test_a_status_line_without_a_reason_is_taken() -> None:
    assert answer(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}") == (200, b"{}", False)


def test_bare_newlines_are_taken() -> None:
    assert answer(b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}") == (200, b"{}", False)


@pytest.mark.parametrize(
    ("raw", "kind", "says"),
    [
        (b"", ConnectionError, "without an answer"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", BadAnswer, "not an HTTP answer"),
        (b"HTTP/1.1 OK\r\n\r\n", BadAnswer, "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", ConnectionError, "after 2 of 10 bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}", BadAnswer, "Content-Length of '-1'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n{}", BadAnswer, "Content-Length of '\xb2'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\n{}", BadAnswer, "two different"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 9\r\n\r\n{}", BadAnswer, "Content-Length of '2, 9'"),
        (b"HTTP/1.1 099 Odd\r\n\r\n", BadAnswer, "not an HTTP answer"),
        (b"HTTP/1.1 2000 Odd\r\n\r\n", BadAnswer, "not an HTTP answer"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n\r\n",
            BadAnswer,
            "chunk size of b'-5'",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", BadAnswer, "chunk size of b'zz'"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}}\r\n0\r\n\r\n",
            BadAnswer,
            "longer than",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{}", ConnectionError, "after 2 of 9"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1), BadAnswer, "an answer of"),
        (
            b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEADERS + 1) + b"\r\n",
            BadAnswer,
            "more than 100 headers",
        ),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n", BadAnswer, "longer than 65536 bytes"),
    ],
)
def test_what_is_not_an_answer_says_why(raw: bytes, kind: type[Exception], says: str) -> None:
    with pytest.raises(kind, match=says.replace("(", r"\(")):
        answer(raw)
