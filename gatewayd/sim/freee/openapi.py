"""freee's official OpenAPI schema as validators for requests and responses.

Why: the emulator must refuse what freee refuses by shape, with freee's messages, so every
request (query, path and body) and every response is checked against the official
definitions, with ``$ref`` resolved by the ``referencing`` library rather than by hand.

The schema ships as package data (``schema/``, MIT licence beside it). OpenAPI 3.0 schema
objects are draft-4 JSON Schema plus ``nullable``; the validator below is Draft 4 extended
so that ``nullable: true`` admits ``null`` (for ``type`` and ``enum``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast
from urllib.parse import parse_qsl

from jsonschema import Draft4Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SCHEMA_FILE = "accounting-v2020_06_15-api-schema.json"
SCHEMA_URI = "urn:freee:accounting-api:v2020_06_15"

JSONObject = dict[str, Any]


def schema_bytes() -> bytes:
    """The schema file exactly as shipped (package data)."""
    return resources.files("gatewayd.sim.freee").joinpath("schema", SCHEMA_FILE).read_bytes()


@functools.cache
def document() -> JSONObject:
    """The parsed OpenAPI document (loaded once per process)."""
    return cast(JSONObject, json.loads(schema_bytes()))


@functools.cache
def registry() -> Registry[Any]:
    """A registry holding the whole document, so pointers into it resolve."""
    resource: Resource[Any] = DRAFT4.create_resource(document())
    return cast(Registry[Any], Registry().with_resource(SCHEMA_URI, resource))


_BASE_TYPE = Draft4Validator.VALIDATORS["type"]
_BASE_ENUM = Draft4Validator.VALIDATORS["enum"]


def _nullable_type(validator: Any, types: Any, instance: Any, schema: Any) -> Any:
    if instance is None and schema.get("nullable") is True:
        return iter(())
    return _BASE_TYPE(validator, types, instance, schema)


def _nullable_enum(validator: Any, enums: Any, instance: Any, schema: Any) -> Any:
    if instance is None and schema.get("nullable") is True:
        return iter(())
    return _BASE_ENUM(validator, enums, instance, schema)


OpenAPIValidator: Any = validators.extend(
    Draft4Validator, {"type": _nullable_type, "enum": _nullable_enum}
)


def pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def ref_to(pointer: str) -> JSONObject:
    """A schema that refers to ``pointer`` (e.g. ``/components/schemas/deal``)."""
    return {"$ref": f"{SCHEMA_URI}#{pointer}"}


@functools.cache
def _validator_for_pointer(pointer: str) -> Any:
    return OpenAPIValidator(ref_to(pointer), registry=registry())


def validator_for(schema: Mapping[str, Any]) -> Any:
    """A validator for a schema whose ``$ref`` values point into the document."""
    return OpenAPIValidator(dict(schema), registry=registry())


def component_pointer(name: str) -> str:
    return f"/components/schemas/{name}"


# -- operations ---------------------------------------------------------------------------

_PARAM = re.compile(r"\{([^}/]+)\}")


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of the schema."""

    method: str
    template: str
    operation_id: str
    pointer: str
    spec: Mapping[str, Any] = field(repr=False, compare=False)
    regex: re.Pattern[str] = field(repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    def declared_statuses(self) -> list[int]:
        return [int(code) for code in self.spec.get("responses", {}) if code.isdigit()]


def _template_regex(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    for match in _PARAM.finditer(template):
        parts.append(re.escape(template[pos : match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        pos = match.end()
    parts.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(parts) + "$")


@functools.cache
def operations() -> tuple[Operation, ...]:
    """Every operation, literal templates before parameterised ones (so ``code/upsert``
    wins over ``{id}``)."""
    found: list[Operation] = []
    for template, item in document()["paths"].items():
        for method, spec in item.items():
            if method not in {"get", "post", "put", "delete", "patch"}:
                continue
            found.append(
                Operation(
                    method=method.upper(),
                    template=template,
                    operation_id=spec.get("operationId", ""),
                    pointer=f"/paths/{pointer_escape(template)}/{method}",
                    spec=spec,
                    regex=_template_regex(template),
                )
            )
    found.sort(key=lambda op: (len(template_params(op.template)), op.template))
    return tuple(found)


def template_params(template: str) -> list[str]:
    return _PARAM.findall(template)


def find_operation(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    """The operation serving ``method path``, with its raw path parameters."""
    for op in operations():
        if op.method != method.upper():
            continue
        match = op.regex.match(path)
        if match:
            return op, match.groupdict()
    return None


def path_exists(path: str) -> bool:
    return any(op.regex.match(path) for op in operations())


@functools.cache
def operation_by_key(key: str) -> Operation:
    for op in operations():
        if op.key == key:
            return op
    raise KeyError(key)


# -- messages -----------------------------------------------------------------------------

_TYPE_NAMES = {
    "integer": "整数",
    "number": "数値",
    "string": "文字列",
    "boolean": "真偽値",
    "array": "配列",
    "object": "オブジェクト",
}


def field_name(path: Iterable[Any], prefix: str = "") -> str:
    text = prefix
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else str(part)
    return text or "リクエスト"


def describe(error: ValidationError, prefix: str = "") -> str:
    """A freee-style Japanese message for one schema violation, naming the field."""
    name = field_name(error.absolute_path, prefix)
    kind = error.validator
    value = error.validator_value
    if kind == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = [key for key in value if key not in instance]
        names = ", ".join(
            field_name([*error.absolute_path, key], prefix) for key in missing
        )
        return f"{names} は必須です。"
    if kind == "type":
        wanted = value if isinstance(value, list) else [value]
        label = "・".join(_TYPE_NAMES.get(str(t), str(t)) for t in wanted)
        return f"{name} は{label}で指定してください。"
    if kind == "enum":
        choices = ", ".join(json.dumps(v, ensure_ascii=False) for v in value)
        return f"{name} は次のいずれかを指定してください: {choices}"
    if kind == "maxLength":
        return f"{name} は{value}文字以内で入力してください。"
    if kind == "minLength":
        return f"{name} は{value}文字以上で入力してください。"
    if kind == "maximum":
        return f"{name} は{value}以下の値を指定してください。"
    if kind == "minimum":
        return f"{name} は{value}以上の値を指定してください。"
    if kind == "pattern":
        return f"{name} の形式が不正です。"
    if kind == "maxItems":
        return f"{name} は{value}件以内で指定してください。"
    if kind == "minItems":
        return f"{name} は{value}件以上指定してください。"
    return f"{name} が不正です。"


def _messages(errors: Iterable[ValidationError], prefix: str = "") -> list[str]:
    ordered = sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
    seen: list[str] = []
    for error in ordered:
        text = describe(error, prefix)
        if text not in seen:
            seen.append(text)
    return seen


# -- coercion (query strings and form bodies carry only text) -----------------------------

_INT = re.compile(r"^-?\d+$")


def _resolve(schema: Any, resolver: Any) -> tuple[Any, Any]:
    while isinstance(schema, dict) and "$ref" in schema:
        resolved = resolver.lookup(schema["$ref"])
        schema, resolver = resolved.contents, resolved.resolver
    return schema, resolver


def coerce(value: Any, schema: Any, resolver: Any | None = None) -> Any:
    """Turn text into the schema's scalar types where it parses; leave it otherwise, so the
    validator reports the mismatch."""
    if resolver is None:
        resolver = registry().resolver(base_uri=SCHEMA_URI)
    schema, resolver = _resolve(schema, resolver)
    if not isinstance(schema, dict):
        return value
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties", {})
        return {
            key: coerce(item, props[key], resolver) if key in props else item
            for key, item in value.items()
        }
    if kind == "array":
        items = value if isinstance(value, list) else [value]
        return [coerce(item, schema.get("items", {}), resolver) for item in items]
    if not isinstance(value, str):
        return value
    if kind == "integer" and _INT.match(value):
        return int(value)
    if kind == "number":
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value
    if kind == "boolean" and value in {"true", "false"}:
        return value == "true"
    if schema.get("nullable") and value == "":
        return None
    return value


_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def parse_form(pairs: Sequence[tuple[str, str]]) -> JSONObject:
    """Rails-style nested form keys (``a[b]``, ``a[]``, ``a[][b]``, ``a[0][b]``) as JSON."""
    root: JSONObject = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if not match:
            root[key] = value
            continue
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        _assign(root, parts, value)
    return cast(JSONObject, _listify(root))


def _assign(node: Any, parts: list[str], value: str) -> None:
    head, rest = parts[0], parts[1:]
    if not rest:
        if head == "":
            node.append(value)
        else:
            node[head] = value
        return
    if head == "":  # "a[][b]": start a new element when the key repeats
        if not node or not isinstance(node[-1], dict) or _has_path(node[-1], rest):
            node.append({})
        _assign(node[-1], rest, value)
        return
    if head not in node:
        node[head] = [] if rest[0] == "" else {}
    _assign(node[head], rest, value)


def _has_path(node: Any, parts: list[str]) -> bool:
    """Whether assigning ``parts`` would overwrite a value (Rack's rule for ``a[][b]``)."""
    for part in parts:
        if part == "" or not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _listify(node: Any) -> Any:
    """Dicts whose keys are all indices ("0", "1", ...) become lists."""
    if isinstance(node, list):
        return [_listify(item) for item in node]
    if isinstance(node, dict):
        converted = {key: _listify(item) for key, item in node.items()}
        if converted and all(_INT.match(key) for key in converted):
            return [converted[key] for key in sorted(converted, key=int)]
        return converted
    return node


# -- request validation -------------------------------------------------------------------


@dataclass
class RequestCheck:
    """Result of checking one request: typed values and freee-style messages."""

    query: JSONObject
    path: JSONObject
    body: JSONObject | None
    messages: list[str]


def _params(op: Operation, location: str) -> list[tuple[int, Mapping[str, Any]]]:
    return [
        (index, param)
        for index, param in enumerate(op.spec.get("parameters", []))
        if param.get("in") == location
    ]


@functools.cache
def _params_validator(op_key: str, location: str) -> Any:
    op = operation_by_key(op_key)
    properties: JSONObject = {}
    required: list[str] = []
    for index, param in _params(op, location):
        properties[param["name"]] = ref_to(f"{op.pointer}/parameters/{index}/schema")
        if param.get("required"):
            required.append(param["name"])
    schema: JSONObject = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return validator_for(schema)


def _collect_params(
    op: Operation, location: str, raw: Mapping[str, list[str]]
) -> JSONObject:
    values: JSONObject = {}
    for _index, param in _params(op, location):
        name = param["name"]
        schema = param.get("schema", {})
        texts = raw.get(name) or raw.get(f"{name}[]")
        if not texts:
            continue
        if schema.get("type") == "array":
            values[name] = coerce(list(texts), schema)
        else:
            values[name] = coerce(texts[-1], schema)
    return values


def body_schema_pointer(op: Operation, content_type: str) -> str | None:
    body = op.spec.get("requestBody")
    if not body:
        return None
    content = body.get("content", {})
    for media in (content_type, "application/json"):
        if media in content and "schema" in content[media]:
            return f"{op.pointer}/requestBody/content/{pointer_escape(media)}/schema"
    return None


def check_request(
    op: Operation,
    query: Mapping[str, list[str]],
    path_params: Mapping[str, str],
    content_type: str,
    raw_body: bytes,
) -> RequestCheck:
    """Validate query, path and body of one request against the operation's schema."""
    messages: list[str] = []
    query_values = _collect_params(op, "query", query)
    path_values = _collect_params(op, "path", {k: [v] for k, v in path_params.items()})
    messages += _messages(_params_validator(op.key, "path").iter_errors(path_values))
    messages += _messages(_params_validator(op.key, "query").iter_errors(query_values))
    body: JSONObject | None = None
    media = content_type.split(";")[0].strip().lower()
    pointer = body_schema_pointer(op, media or "application/json")
    if pointer is not None:
        parsed: Any
        if media == "application/x-www-form-urlencoded":
            pairs = parse_qsl(raw_body.decode("utf-8", "replace"), keep_blank_values=True)
            parsed = coerce(parse_form(pairs), ref_to(pointer))
        elif not raw_body.strip():
            parsed = {}
        else:
            try:
                parsed = json.loads(raw_body)
            except (ValueError, UnicodeDecodeError):
                return RequestCheck(
                    query_values, path_values, None, [*messages, "JSONの形式が不正です。"]
                )
        messages += _messages(_validator_for_pointer(pointer).iter_errors(parsed))
        body = parsed if isinstance(parsed, dict) else None
    return RequestCheck(query_values, path_values, body, messages)


# -- response validation ------------------------------------------------------------------

# Statuses freee answers on any path although an operation may not list them.
UNDECLARED_FALLBACKS = {
    404: "badRequestNotFoundError",
    429: "tooManyRequestsError",
    500: "internalServerError",
    503: "serviceUnavailableError",
}


def response_pointer(op: Operation | None, status: int) -> str | bool | None:
    """Pointer of the schema for ``status``; ``None`` for a declared empty body; ``False``
    when neither the operation nor freee's common errors define it."""
    if op is not None:
        declared = op.spec.get("responses", {}).get(str(status))
        if declared is not None:
            content = declared.get("content") or {}
            if "application/json" not in content:
                return None
            return f"{op.pointer}/responses/{status}/content/application~1json/schema"
    fallback = UNDECLARED_FALLBACKS.get(status)
    if fallback is not None:
        return component_pointer(fallback)
    return False


def check_response(op: Operation | None, status: int, body: Any, has_body: bool) -> list[str]:
    """Problems of one response against the schema; empty when it conforms."""
    pointer = response_pointer(op, status)
    where = op.key if op is not None else "(no operation)"
    if pointer is False:
        return [f"{where}: status {status} is not declared by the schema"]
    if pointer is None:
        return [f"{where}: status {status} must have an empty body"] if has_body else []
    assert isinstance(pointer, str)
    return [
        f"{where} {status}: {error.message} at {field_name(error.absolute_path)}"
        for error in _validator_for_pointer(pointer).iter_errors(body)
    ]


def check_component(name: str, instance: Any) -> list[str]:
    """Problems of ``instance`` against ``#/components/schemas/<name>``."""
    validator = _validator_for_pointer(component_pointer(name))
    return [
        f"{name}: {error.message} at {field_name(error.absolute_path)}"
        for error in validator.iter_errors(instance)
    ]
