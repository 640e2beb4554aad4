"""The base class every spec section derives from.

Specs are pydantic models that are frozen (a spec never changes after validation) and forbid
unknown keys (a YAML typo is an error, not a silently ignored field). Fields that do not change
what a run *computes* (paths to weights or data, output locations) are marked non-semantic with
:func:`nonsemantic` so that they are left out of the run id: the same experiment on another
machine, with its weights in another folder, keeps its id.
"""

from __future__ import annotations

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


def invalid_at(model: BaseModel, loc: tuple[str, ...], message: str, value: Any) -> ValidationError:
    """A validation error at ``loc`` raised by a check across fields (a ``model_validator``).

    A model validator's own errors sit at the model, not at a key; a check such as "groups must
    divide the widths" belongs to ``adapter.groups``, so it raises this error there and the file's
    line of that key is named.
    """
    detail = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc,
                              input=value)
    return ValidationError.from_exception_data(type(model).__name__, [detail])
