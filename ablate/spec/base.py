"""The base class every spec section derives from.

Specs are pydantic models that are frozen (a spec never changes after validation) and forbid
unknown keys (a YAML typo is an error, not a silently ignored field). Fields that do not change
what a run *computes* (paths to weights or data, output locations) are marked non-semantic with
:func:`nonsemantic` so that they are left out of the run id: the same experiment on another
machine, with its weights in another folder, keeps its id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

NONSEMANTIC_KEY = "ablate_nonsemantic"


class SpecModel(BaseModel):
    """Base of all spec sections: frozen, strict about unknown keys, finite numbers, documented."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        use_attribute_docstrings=True,
        allow_inf_nan=False,  # an infinite learning rate or timeout is a typo, never a setting
    )


def nonsemantic(default: Any = None, **kwargs: Any) -> Any:
    """A field that is excluded from the run id (paths, locations, machine details).

    Args:
        default: the field default.
        **kwargs: passed to ``pydantic.Field``.
    """
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[NONSEMANTIC_KEY] = True
    return Field(default, json_schema_extra=extra, **kwargs)


def is_nonsemantic(model_cls: type[BaseModel], field_name: str) -> bool:
    """Whether ``field_name`` of ``model_cls`` was declared with :func:`nonsemantic`."""
    info = model_cls.model_fields[field_name]
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(NONSEMANTIC_KEY))


def spec_problem(message: str, allowed: Iterable[Any] | None = None) -> PydanticCustomError:
    """An error a validator raises: ``message``, and the values allowed instead (listed after).

    Raise it from a field validator where a ``ValueError`` would lose the allowed values; the
    converter (:func:`ablate.spec.validation.spec_error`) lists them after the message.
    """
    context = {"allowed": [str(a) for a in allowed]} if allowed is not None else None
    return PydanticCustomError("value_error", message, context)  # only {allowed} is replaced


def invalid_at(
    model: BaseModel | type[BaseModel],
    loc: tuple[Any, ...],
    message: str,
    value: Any,
    allowed: Iterable[Any] | None = None,
) -> ValidationError:
    """A validation error at ``loc`` raised by a check across fields (a ``model_validator``).

    A model validator's own errors sit at the model, not at a key; a check such as "groups must
    divide the widths" belongs to ``adapter.groups``, so it raises this error there and the file's
    line of that key is named.
    """
    detail = InitErrorDetails(type=spec_problem(message, allowed), loc=loc, input=value)
    title = model.__name__ if isinstance(model, type) else type(model).__name__
    return ValidationError.from_exception_data(title, [detail])
