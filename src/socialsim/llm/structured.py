"""Structured output: JSON schema for constrained decoding, parse + repair, bounded retry.

A parse failure is never a silent ``None``: `generate_structured` returns a validated model or
raises `StructuredOutputError` carrying the last raw output and every completion made.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from socialsim.errors import StructuredOutputError
from socialsim.llm.base import ChatRequest, Completion

T = TypeVar("T", bound=BaseModel)


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return _inline_refs(copy.deepcopy(defs[name]), defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


@functools.lru_cache(maxsize=64)
def grammar_schema(model: type[BaseModel], *, max_string: int = 200) -> dict[str, Any]:
    """A JSON schema of `model` that grammar-based decoders (llama.cpp) enforce faithfully.

    Refs are inlined, small integer ranges become enums (llama.cpp ignores minimum/maximum),
    string lengths are capped so output is not cut mid-string, and every property is required.
    Built once per model (pydantic's schema generation cost ~4 ms, paid on every thought call
    before): the returned dict is shared, so treat it as read-only.
    """
    schema = model.model_json_schema()
    out = _inline_refs(schema, schema.get("$defs", {}))

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: fix(v) for k, v in node.items() if k not in ("title", "description", "default")}
            if node.get("type") == "integer" and "minimum" in node and "maximum" in node:
                lo, hi = node.pop("minimum"), node.pop("maximum")
                if hi - lo <= 20:
                    node["enum"] = list(range(lo, hi + 1))
                    node.pop("type")
            if node.get("type") == "string" and "enum" not in node:
                node["maxLength"] = min(node.get("maxLength", max_string), max_string)
            if node.get("type") == "object" and "properties" in node:
                node["required"] = list(node["properties"])
            return node
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    fixed = fix(out)
    fixed["title"] = model.__name__
    return fixed


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def repair_json(text: str) -> Any:
    """Parse JSON from model text: strips code fences and prose around the object, tolerates raw
    control characters in strings and trailing commas. Raises `ValueError` when nothing parses."""
    candidates = [text.strip()]
    m = _FENCE.search(text)
    if m:
        candidates.append(m.group(1).strip())
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    elif start != -1:
        candidates.append(text[start:] + "}")  # cut-off object: try closing it
    for cand in candidates:
        for variant in (cand, re.sub(r",\s*([}\]])", r"\1", cand)):
            try:
                return json.loads(variant, strict=False)
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON object found in the output")


def parse_model(model: type[T], text: str) -> T:
    """Validate model text as `model`; raises `ValueError` with a short reason."""
    data = repair_json(text)
    if not isinstance(data, dict):
        raise ValueError("output JSON is not an object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"field '{field}': {first['msg']}") from None


async def generate_structured(
    llm: Any, request: ChatRequest, model: type[T], *, attempts: int = 3
) -> tuple[T, list[Completion]]:
    """Ask `llm` for JSON matching `model`, constrained when the backend can; parse, repair and
    retry with a changed seed up to `attempts` times. Returns the object and every completion
    made (for usage accounting)."""
    schema = request.json_schema or grammar_schema(model)
    completions: list[Completion] = []
    reasons: list[str] = []
    req = replace(request, json_schema=schema)
    for i in range(attempts):
        if i:
            seed = None if request.seed is None else request.seed + 7919 * i
            req = replace(req, seed=seed, temperature=min(1.0, request.temperature + 0.2 * i))
        c = await llm.complete(req)
        completions.append(c)
        try:
            return parse_model(model, c.text), completions
        except ValueError as e:
            reasons.append(str(e))
    raise StructuredOutputError(
        f"{model.__name__} output unparseable after {attempts} attempts: {reasons[-1]}",
        raw=completions[-1].text if completions else "",
        completions=completions,
    )
