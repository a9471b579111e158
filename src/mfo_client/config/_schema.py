"""Reading the models' structure, so the loader's walks follow new fields without being told."""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Secret, SecretBytes, SecretStr

__all__ = ["Shape", "keys_of", "shape_at", "shape_of"]

_SECRET_TYPES = (SecretStr, SecretBytes, Secret)
_SEQUENCES = (list, tuple, set, frozenset, Sequence)
_MAPPINGS = (dict, Mapping)


@dataclass(frozen=True)
class Shape:
    """What a field holds, as far as walking raw data is concerned."""

    model: type[BaseModel] | None = None  # a nested section
    items: Shape | None = None  # element shape of a list-like field
    values: Shape | None = None  # value shape of a mapping field
    optional: bool = False  # `None` is a meaningful value
    secret: bool = False


def keys_of(model: type[BaseModel]) -> dict[str, Shape]:
    """The keys a section accepts in YAML, with the shape of each."""
    return {
        field.alias or name: shape_of(field.annotation)
        for name, field in model.model_fields.items()
    }


def shape_of(annotation: Any) -> Shape:
    annotation = _unannotated(annotation)
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(get_args(annotation))
        if len(members) != 1:
            return Shape(optional=optional)
        annotation = _unannotated(members[0])
    origin = get_origin(annotation) or annotation
    args = get_args(annotation)
    if isinstance(origin, type):
        if issubclass(origin, BaseModel):
            return Shape(model=origin, optional=optional)
        if issubclass(origin, _SECRET_TYPES):
            return Shape(optional=optional, secret=True)
        if issubclass(origin, _MAPPINGS) and len(args) == 2:
            return Shape(values=shape_of(args[1]), optional=optional)
        if issubclass(origin, _SEQUENCES) and not issubclass(origin, str | bytes) and args:
            return Shape(items=shape_of(args[0]), optional=optional)
    return Shape(optional=optional)


def shape_at(model: type[BaseModel], path: Sequence[str | int]) -> Shape | None:
    """The shape at a validation error's location, or None when the path leaves the models."""
    shape = Shape(model=model)
    for part in path:
        if shape.model is not None and isinstance(part, str):
            found = keys_of(shape.model).get(part)
        elif shape.items is not None and isinstance(part, int):
            found = shape.items
        elif shape.values is not None:
            found = shape.values
        else:
            found = None
        if found is None:
            return None
        shape = found
    return shape


def _unannotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation
