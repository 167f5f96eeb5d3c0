"""Each table's row type agrees with its pyarrow schema: same columns, same order, matching types and nullability."""
from __future__ import annotations

import typing
from typing import Any

import pyarrow as pa
import pytest

from transforms.flattening import rows_to_table
from transforms.schema import ROW_TYPES, TABLES


def python_type(type_: pa.DataType) -> Any:
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
        return list[python_type(type_.value_type)]
    raise AssertionError(f"no Python type for {type_}")


def test_every_table_has_a_row_type():
    assert ROW_TYPES.keys() == TABLES.keys()


@pytest.mark.parametrize("table", sorted(TABLES))
def test_row_type_matches_schema(table: str):
    schema, row_type = TABLES[table], ROW_TYPES[table]
    assert row_type._fields == tuple(schema.names)
    hints = typing.get_type_hints(row_type)
    for field in schema:
        expected = python_type(field.type)
        if field.nullable:
            expected = expected | None
        assert hints[field.name] == expected, f"{table}.{field.name}: {hints[field.name]} vs {field.type} (nullable={field.nullable})"


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
