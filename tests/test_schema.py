"""Each table's row type agrees with its pyarrow schema: same columns, same order, matching types and nullability.

The row types are made from the schemas (transforms/schema.py), so this checks that making them keeps every
column, its order, its Python type and its nullability; ``disagreements`` is shown to catch each kind of mismatch.
"""
from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any, NamedTuple

import pyarrow as pa
import pytest

from transforms.flattening import rows_to_table
from transforms.schema import ROW_TYPES, TABLES


def expected_type(type_: pa.DataType) -> Any:
    """Written out here, apart from schema.python_type, so a wrong mapping there shows."""
    if pa.types.is_string(type_):
        return str
    if pa.types.is_integer(type_):
        return int
    if pa.types.is_boolean(type_):
        return bool
    if pa.types.is_floating(type_):
        return float
    if pa.types.is_binary(type_):
        return bytes
    if pa.types.is_struct(type_):
        return dict[str, Any]
    if pa.types.is_list(type_):
        return Sequence[expected_type(type_.value_type)]
    raise AssertionError(f"no Python type for {type_}")


def disagreements(schema: pa.Schema, row_type: type) -> list[str]:
    if row_type._fields != tuple(schema.names):
        return [f"fields {row_type._fields} vs columns {tuple(schema.names)}"]
    hints = typing.get_type_hints(row_type)
    out = []
    for field in schema:
        expected = expected_type(field.type)
        if field.nullable:
            expected = expected | None
        if hints[field.name] != expected:
            out.append(f"{field.name}: {hints[field.name]} vs {field.type} (nullable={field.nullable})")
    return out


def test_every_table_has_a_row_type():
    assert ROW_TYPES.keys() == TABLES.keys()


@pytest.mark.parametrize("table", sorted(TABLES))
def test_row_type_matches_schema(table: str):
    assert disagreements(TABLES[table], ROW_TYPES[table]) == []


class _Good(NamedTuple):
    name: str
    count: int | None
    labels: Sequence[str]


class _Swapped(NamedTuple):
    count: int | None
    name: str
    labels: Sequence[str]


class _NotNullable(NamedTuple):
    name: str
    count: int
    labels: Sequence[str]


class _WrongType(NamedTuple):
    name: str
    count: float | None
    labels: Sequence[str]


class _Missing(NamedTuple):
    name: str
    count: int | None


def test_the_check_catches_every_kind_of_disagreement():
    schema = pa.schema([pa.field("name", pa.string(), nullable=False), pa.field("count", pa.int64()),
                        pa.field("labels", pa.list_(pa.string()), nullable=False)])
    assert disagreements(schema, _Good) == []
    for wrong in (_Swapped, _NotNullable, _WrongType, _Missing):
        assert disagreements(schema, wrong), wrong.__name__


def _value(type_: pa.DataType, i: int) -> Any:
    if pa.types.is_string(type_):
        return f"s{i}"
    if pa.types.is_integer(type_):
        return i
    if pa.types.is_boolean(type_):
        return i % 2 == 0
    if pa.types.is_floating(type_):
        return i + 0.5
    if pa.types.is_binary(type_):
        return bytes([i])
    if pa.types.is_struct(type_):
        return {f.name: _value(f.type, i) for f in type_}
    return [_value(type_.value_type, i)]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_rows_built_by_name_land_in_their_columns(table: str):
    schema, row_type = TABLES[table], ROW_TYPES[table]
    row = row_type(**{f.name: _value(f.type, i) for i, f in enumerate(schema)})
    assert rows_to_table(table, [row]).to_pylist() == [row._asdict()]
