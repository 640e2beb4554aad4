"""The one way a spec is validated: a pydantic model, and one converter of its errors.

Every file a user writes (sweep, run spec, report spec, runner profile, ``search:`` section) is
validated by a :class:`~ablate.spec.base.SpecModel`. Pydantic's errors name a location
(``('train', 'lr')``) and a message; :func:`spec_error` turns each of them (up to
:data:`MAX_ERRORS`, all reported at once) into a :class:`~ablate.errors.SpecError` that names the
file, the line the key was written on, the dotted key, the bad value and what is allowed, so a typo
reads the same whichever file it is in. A section whose schema depends on its content (an adapter:
its ``name`` picks the schema) names the picked schema's fields as the allowed keys, through the
section model's ``concrete_schema(data)`` classmethod.
:func:`error_at` is the same message for checks written by hand (a file that is not found, a row
that names no sweep label).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from ablate.errors import SpecError, did_you_mean, spec_errors
from ablate.spec.yaml_source import KeyPath, YamlSource

#: Maps a cleaned key path (``('grid', 'train.lr')``) to the file and line it was written on.
Locator = Callable[[KeyPath], tuple[str | None, int | None]]

_UNION_TYPES = (Union, types.UnionType)
#: Errors of one document reported at once; the rest are counted.
MAX_ERRORS = 20


def error_at(src: YamlSource, keypath: KeyPath, message: str, **kw: Any) -> SpecError:
    """A :class:`SpecError` at ``keypath`` of ``src``: its file, line and dotted key."""
    key = ".".join(str(p) for p in keypath)
    return SpecError(message, file=src.path, line=src.line_of(keypath), key=key or None, **kw)


def source_locator(src: YamlSource, prefix: KeyPath = ()) -> Locator:
    """A locator for a model validated from ``src.data`` at ``prefix`` (``('search',)``)."""
    return lambda loc: (str(src.path), src.line_of((*prefix, *loc)))


def validate(
    model_cls: Any,
    data: Any,
    *,
    file: str | Path | None = None,
    locate: Locator | None = None,
    prefix: KeyPath = (),
    hidden: Sequence[str] = (),
) -> Any:
    """``model_cls.model_validate(data)``, its first error raised as a :class:`SpecError`.

    Args:
        model_cls: the schema: a model, or a type such as a discriminated union of models.
        data: the parsed document (or section).
        file: named in errors when ``locate`` does not know better.
        locate: maps a key path to its file and line (see :func:`source_locator`).
        prefix: keys above ``data`` in its file (``('search',)``), shown in the dotted key.
        hidden: fields filled in by the program (a profile's ``name``), never listed as allowed.

    Raises:
        SpecError: every validation error (a :class:`~ablate.errors.SpecErrors` when several),
            each naming file, line, key, value and what is allowed.
    """
    try:
        if isinstance(model_cls, type) and issubclass(model_cls, BaseModel):
            return model_cls.model_validate(data)
        return _adapter(model_cls).validate_python(data)
    except ValidationError as err:
        raise spec_error(
            err, model_cls, file=file, locate=locate, prefix=prefix, hidden=hidden, data=data
        ) from None


@functools.cache
def _adapter(schema: Any) -> TypeAdapter[Any]:
    return TypeAdapter(schema)


def spec_error(
    err: ValidationError,
    model_cls: Any,
    *,
    file: str | Path | None = None,
    locate: Locator | None = None,
    prefix: KeyPath = (),
    hidden: Sequence[str] = (),
    data: Any = None,
) -> SpecError:
    """Turn pydantic's errors into one :class:`SpecError` listing each (see :func:`validate`).

    One error per key the user wrote (pydantic reports a union's members apart: the first is
    kept), at most :data:`MAX_ERRORS`. ``data`` is the validated input: it picks the schema of a
    section whose schema depends on its content (the allowed keys of ``adapter.dimm``).
    """
    default_file = str(file) if file is not None else None
    converted = []
    seen: set[KeyPath] = set()
    for detail in err.errors():
        walk = _clean_loc(model_cls, tuple(detail["loc"]), data)
        if walk.loc in seen:
            continue
        seen.add(walk.loc)
        converted.append(_convert(detail, walk, default_file, locate, prefix, hidden))
    return spec_errors(converted, MAX_ERRORS)


def _convert(
    first: Any,
    walk: _Walk,
    default_file: str | None,
    locate: Locator | None,
    prefix: KeyPath,
    hidden: Sequence[str],
) -> SpecError:
    """One pydantic error as a :class:`SpecError` at the key the user wrote."""
    loc, at = walk.loc, walk.parent
    where_file, line = locate(loc) if locate is not None else (default_file, None)
    where = {"file": where_file or default_file, "line": line}
    dotted = ".".join(str(p) for p in (*prefix, *loc)) or None
    kind = first["type"]
    ctx = first.get("ctx") or {}
    value = first.get("input")
    if kind == "extra_forbidden":
        allowed = [f for f in _fields_of(at) if f not in hidden]
        hint = did_you_mean(str(loc[-1]), allowed)
        owners = [tag for tag, member in walk.siblings.items() if loc[-1] in _fields_of(member)]
        if owners:
            tag_key = _tag_field(walk.siblings[owners[0]], owners[0])
            hint = f" (only for {tag_key}: {' or '.join(owners)})"
        return SpecError(
            f"unknown key {loc[-1]!r}{hint}",
            key=dotted,
            allowed=allowed,
            show_value=False,
            **where,
        )
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(ctx.get("discriminator", "")).strip("'")
        tags = list(_union_tags(walk.current)) or [
            t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()
        ]
        key = ".".join(str(p) for p in (*prefix, *loc, tag))
        where_file, line = locate((*loc, tag)) if locate is not None else (default_file, None)
        where = {"file": where_file or default_file, "line": line}
        if kind == "union_tag_not_found":
            return SpecError(f"missing key {tag!r}", key=key, allowed=tags, **where)
        return SpecError(f"Input should be {_one_of(tags)}", key=key, value=ctx.get("tag"), **where)
    if kind == "missing":
        return SpecError(f"missing key {loc[-1]!r}", key=dotted, show_value=False, **where)
    message = first["msg"].removeprefix("Value error, ")
    if "[key]" in first["loc"]:
        message = "a key must be text (a name or a dotted key)"
    allowed = ctx.get("allowed") if isinstance(ctx.get("allowed"), list) else None
    if isinstance(value, Mapping):
        value = None  # a whole section: the message says what is wrong with it
    return SpecError(message, key=dotted, value=value, allowed=allowed, **where)


@dataclass
class _Walk:
    """Where pydantic's location leads in the schema.

    Attributes:
        loc: the keys the user wrote (pydantic's internal parts dropped).
        parent: the type holding the last key (for the allowed keys of an unknown one).
        current: the type at the last key.
        siblings: tag -> the other members of the discriminated union ``parent`` was chosen from.
    """

    loc: KeyPath
    parent: Any
    current: Any
    siblings: dict[str, Any] = field(default_factory=dict)


def _clean_loc(model_cls: Any, raw: tuple[Any, ...], data: Any = None) -> _Walk:
    """Pydantic's location without its internal parts, walking the schema along it.

    Pydantic adds parts the user never wrote: a union member's name (``'int'``,
    ``"literal['auto','none']"``), a discriminated union's tag, ``function-after[...]`` and
    ``[key]``. They are dropped by walking the schema along the location. ``data`` is walked
    alongside, so that a model that picks its schema from its content (``concrete_schema``)
    is replaced by the schema it picks.
    """
    walk = _Walk((), model_cls, model_cls)
    out: list[Any] = []
    chosen: Any = None  # the union member the siblings are siblings of
    node = data
    for part in raw:
        if isinstance(part, str) and (part.startswith("function-") or part == "[key]"):
            continue
        current = _concrete(_strip_annotated(walk.current), node)
        members = _union_members(current)
        if members is not None:  # pydantic names the member (or tag) it tried: not a key
            walk.current = chosen = _member_for(members, part)
            walk.siblings = {t: m for t, m in _union_tags(current).items() if t != part}
            continue
        if current is not chosen:
            walk.siblings = {}
        walk.parent = current
        out.append(part)
        walk.current = _child_type(current, part)
        node = _child_data(node, part)
    walk.current = _concrete(_strip_annotated(walk.current), node)
    walk.loc = tuple(out)
    return walk


def _concrete(tp: Any, node: Any) -> Any:
    """The schema a model picks for the section ``node`` (its ``concrete_schema``), else ``tp``."""
    pick = getattr(tp, "concrete_schema", None) if isinstance(tp, type) else None
    if pick is not None and isinstance(node, Mapping):
        return pick(node)
    return tp


def _child_data(node: Any, part: Any) -> Any:
    """``node[part]`` for a mapping key or a list index, else ``None``."""
    if isinstance(node, Mapping):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _tag_field(model: Any, tag: str) -> str:
    """The field of ``model`` whose single literal value is ``tag`` (its discriminator)."""
    for name, info in model.model_fields.items():
        if get_origin(info.annotation) is Literal and get_args(info.annotation) == (tag,):
            return name
    return "its kind"


def _union_tags(tp: Any) -> dict[str, Any]:
    """Tag -> member of a discriminated union of models (empty for anything else)."""
    tags: dict[str, Any] = {}
    for member in _union_members(_strip_annotated(tp)) or []:
        model = _strip_annotated(member)
        if isinstance(model, type) and issubclass(model, BaseModel):
            for info in model.model_fields.values():
                if get_origin(info.annotation) is Literal and len(get_args(info.annotation)) == 1:
                    tags[str(get_args(info.annotation)[0])] = model
                    break
    return tags


def _one_of(choices: list[str]) -> str:
    """``'a', 'b' or 'c'``, as pydantic words a literal's choices."""
    quoted = [repr(c) for c in choices]
    if not quoted:
        return "one of the allowed kinds"
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _strip_annotated(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _union_members(tp: Any) -> list[Any] | None:
    if get_origin(tp) not in _UNION_TYPES:
        return None
    members = [m for m in get_args(tp) if m is not type(None)]
    return members if len(members) > 1 else None


def _member_for(members: list[Any], part: Any) -> Any:
    """The union member pydantic named by ``part`` (a tag or a model's name), else ``None``."""
    for member in members:
        model = _strip_annotated(member)
        if isinstance(model, type) and issubclass(model, BaseModel):
            if part == model.__name__:
                return model
            for info in model.model_fields.values():
                if get_origin(info.annotation) is Literal and part in get_args(info.annotation):
                    return model
    return None


def _child_type(tp: Any, part: Any) -> Any:
    """The declared type one step below ``tp`` along ``part`` (``None`` when unknown)."""
    tp = _strip_annotated(tp)
    if tp is None:
        return None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        info = tp.model_fields.get(part) if isinstance(part, str) else None
        return info.annotation if info is not None else None
    members = _union_members(tp)
    if members is None and get_origin(tp) in _UNION_TYPES:  # X | None
        return _child_type(next(a for a in get_args(tp) if a is not type(None)), part)
    origin, args = get_origin(tp), get_args(tp)
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    if origin in (list, Sequence, set, frozenset) and args:
        return args[0]
    if origin is tuple and args:
        return args[0]
    return None


def _fields_of(tp: Any) -> list[str]:
    tp = _strip_annotated(tp)
    if get_origin(tp) in _UNION_TYPES:
        nested = [a for a in get_args(tp) if a is not type(None)]
        tp = nested[0] if len(nested) == 1 else None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []
