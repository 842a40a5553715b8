"""The response examples shown in the OpenAPI document (and Swagger UI) are answers the service can give."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from app import schemas
from app.settings import Settings

EXAMPLED = [
    model
    for name in schemas.__all__
    if isinstance(model := getattr(schemas, name), type)
    and issubclass(model, BaseModel)
    and "examples" in (model.model_config.get("json_schema_extra") or {})
]


def examples(model: type[BaseModel]) -> list[dict[str, object]]:
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    found = extra["examples"]
    assert isinstance(found, list)
    return found


def test_the_schemas_with_examples_are_the_response_bodies() -> None:
    names = {model.__name__ for model in EXAMPLED}
    assert {"ClassifyResponse", "ClassifyBatchResponse", "OrbitResponse"} <= names


@pytest.mark.parametrize("model", EXAMPLED, ids=lambda model: model.__name__)
def test_every_example_validates_against_its_own_schema(model: type[BaseModel]) -> None:
    for example in examples(model):
        model.model_validate(example)


@pytest.mark.parametrize("model", EXAMPLED, ids=lambda model: model.__name__)
def test_examples_name_only_the_models_served_by_default(model: type[BaseModel]) -> None:
    served = set(Settings.model_fields["models"].default)
    for example in examples(model):
        assert set(_model_names(example)) <= served


def test_the_examples_of_answers_from_models_name_both_served_models() -> None:
    served = set(Settings.model_fields["models"].default)
    for model in (schemas.ClassifyResponse, schemas.OrbitResponse, schemas.ReadyResponse):
        assert {name for example in examples(model) for name in _model_names(example)} == served, model.__name__


def _model_names(value: object) -> list[str]:
    """Every model an example names: a prediction's or summary's ``model``, a card's ``name``, a list of ``models``
    (not the network a card's training record names: a served model's pose may be fitted on another's features)."""
    if isinstance(value, dict):
        answers = "digit" in value or "upright_digit" in value
        found = [value["model"]] if answers and isinstance(value.get("model"), str) else []
        if "architecture" in value and isinstance(value.get("name"), str):
            found.append(value["name"])
        models = value.get("models")
        if isinstance(models, list):
            found += [name for name in models if isinstance(name, str)]
        return found + [name for item in value.values() for name in _model_names(item)]
    if isinstance(value, list):
        return [name for item in value for name in _model_names(item)]
    return []
