"""The subset of JSON Schema (draft 4, npm `jsonschema`) that Azure-Sentinel's schemas use.

`isValidSchema` (.script/utils/jsonSchemaChecker.ts) throws "Invalid Schema. Validation errors: "
followed by each error's `stack` (npm jsonschema's wording, reproduced here) and, when the schema
node has one, ". Description: ...". Supported: type, properties, required, items (a list means
positional items, as those schemas use it), additionalProperties false, minLength.
"""

from __future__ import annotations

from typing import Any

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _errors(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    out: list[str] = []

    def add(stack: str) -> None:
        description = schema.get("description")
        out.append(stack + (f". Description: {description}" if description else ""))

    kind = schema.get("type")
    if kind and not _TYPES[kind](value):
        add(f"{path} is not of a type(s) {kind}")
        return out
    if isinstance(value, str) and "minLength" in schema and len(value) < schema["minLength"]:
        add(f"{path} does not meet minimum length of {schema['minLength']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                add(f'{path} requires property "{name}"')
        props = schema.get("properties", {})
        for name, sub in props.items():
            if name in value:
                out += _errors(value[name], sub, f"{path}.{name}")
        if schema.get("additionalProperties") is False:
            for name in value:
                if name not in props:
                    add(f'{path} is not allowed to have the additional property "{name}"')
    if isinstance(value, list) and "items" in schema:
        items = schema["items"]
        for i, item in enumerate(value):
            sub = (
                items[i]
                if isinstance(items, list) and i < len(items)
                else (None if isinstance(items, list) else items)
            )
            if sub is not None:
                out += _errors(item, sub, f"{path}[{i}]")
    return out


def schema_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    """Each error's stack, as npm jsonschema builds it (the root is called `instance`)."""
    return _errors(value, schema, "instance")


def invalid_schema_message(value: Any, schema: dict[str, Any]) -> str | None:
    errors = schema_errors(value, schema)
    return f"Invalid Schema. Validation errors: {', '.join(errors)}" if errors else None
