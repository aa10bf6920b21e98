"""The WebSocket endpoint's pure helpers: frames, selection compilation, token parsing."""

from __future__ import annotations

import struct

import pytest
from graphql import OperationDefinitionNode, parse

from tickserver.api.schema import build_schema
from tickserver.api.ws import (
    _compile_flat,
    _merge,
    _pick_operation,
    _projector,
    _token_from_payload,
    ws_frame,
)
from tickserver.events import trades_from_columns


@pytest.mark.parametrize("n", [0, 125, 126, 65535, 65536])
def test_ws_frame_encodes_length_in_the_right_form(n: int) -> None:
    # Act
    frame = ws_frame(b"x" * n)
    # Assert
    assert frame[0] == 0x81
    if n < 126:
        assert frame[1] == n
        assert len(frame) == 2 + n
    elif n < 65536:
        assert frame[1] == 126
        assert struct.unpack("!H", frame[2:4])[0] == n
    else:
        assert frame[1] == 127
        assert struct.unpack("!Q", frame[2:10])[0] == n


def _compile(query: str) -> tuple[tuple[str, str], ...] | None:
    schema = build_schema()._schema
    doc = parse(query)
    op = _pick_operation(doc, None)
    assert isinstance(op, OperationDefinitionNode)
    root = op.selection_set.selections[0]
    ticks_type = schema.get_type("Tick")
    frags = {d.name.value: d for d in doc.definitions if d.kind == "fragment_definition"}
    return _compile_flat(root.selection_set, ticks_type, frags)  # type: ignore[attr-defined,arg-type]


def test_flat_selection_keeps_aliases_fragments_and_typename() -> None:
    sel = _compile(
        "subscription { ticks { p: price size ...F ... on Tick { seq } __typename } }"
        " fragment F on Tick { symbol price }"
    )
    assert sel == (
        ("p", "price"),
        ("size", "size"),
        ("symbol", "symbol"),
        ("price", "price"),
        ("seq", "seq"),
        ("__typename", "__typename:Tick"),
    )
    row = {"price": 1.5, "size": 2.0, "symbol": "A", "seq": 3}
    assert _projector(sel)(row) == {
        "p": 1.5,
        "size": 2.0,
        "symbol": "A",
        "price": 1.5,
        "seq": 3,
        "__typename": "Tick",
    }


def test_selection_with_directives_falls_back_to_full_execution() -> None:
    assert _compile("subscription { ticks { price @include(if: true) } }") is None


@pytest.mark.parametrize(
    ("payload", "token"),
    [
        ({"token": "abc"}, "abc"),
        ({"Authorization": "Bearer abc"}, "abc"),
        ({"headers": {"authorization": "bearer abc"}}, "abc"),
        ({}, None),
        (None, None),
        ("abc", None),
    ],
)
def test_token_is_found_in_the_usual_connection_init_shapes(
    payload: object, token: str | None
) -> None:
    assert _token_from_payload(payload) == token


def test_merge_concatenates_consecutive_batches_of_one_kind() -> None:
    a = trades_from_columns("s", [0], [1], [1.0], [1.0], [1])
    b = trades_from_columns("s", [0], [2], [2.0], [1.0], [2])
    merged = _merge([a, b, "other", a])
    assert len(merged) == 3
    assert merged[0].seq.tolist() == [1, 2]
