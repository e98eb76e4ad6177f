"""Tests for marketplace.catalog.cogschema: OpenAPI schemas for Cog models, generated without the
Cog CLI.

No database needed: .venv/bin/python -m pytest tests/marketplace/catalog/test_cogschema.py -q
"""

from __future__ import annotations

import contextlib
import json
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketplace.catalog.cogschema import (
    SCHEMA_RELPATH,
    CogProjectError,
    ensure_schema,
    generate_schema,
    predictor_ref,
    read_cog_config,
    streaming_from_source,
)
from workers.runtimes.base import InstanceSpec
from workers.runtimes.local import LocalRuntime

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "cog"
EXAMPLES = ROOT / "examples"
EXAMPLE_NAMES = [p.name for p in sorted(EXAMPLES.iterdir()) if (p / "cog.yaml").is_file()]

COG_YAML = 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'
HELLO_SOURCE = """
    from cog import BasePredictor, Input


    class Predictor(BasePredictor):
        def predict(self, text: str = Input(default="world")) -> str:
            return "hello " + text
"""


def make_model(directory: Path, source: str, cog_yaml: str = COG_YAML) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cog.yaml").write_text(cog_yaml)
    (directory / "predict.py").write_text(textwrap.dedent(source))
    return directory


# --------------------------------------------------------------------------- (a) Cog's shape


def test_fixture_predictor_schema_equals_cogs_reference_document():
    # The expected file is cog-schemas/predict-cog0.23-generated.json (identical to what cog
    # 0.19.3's generator emitted for this predictor) with one deliberate change: `api_key`
    # (`Secret = Input(default=None)`) is not required, as in cog's Go generator used by
    # `cog build` since 0.19; coglet then passes None when it is omitted.
    expected = json.loads((FIXTURES / "predict_fixture_expected.json").read_text())

    document = generate_schema(FIXTURES / "predict_fixture")

    assert document == expected


def test_fixture_schema_keeps_the_conventions_forms_rely_on():
    schemas = generate_schema(FIXTURES / "predict_fixture")["components"]["schemas"]
    props = schemas["Input"]["properties"]

    assert [props[name]["x-order"] for name in props] == list(range(12))
    assert props["width"]["minimum"] == 256.0 and isinstance(props["width"]["minimum"], float)
    assert "title" not in props["scheduler"] and "type" not in props["scheduler"]
    assert props["scheduler"]["allOf"] == [{"$ref": "#/components/schemas/scheduler"}]
    assert schemas["num_outputs"]["type"] == "integer"
    assert props["seed"]["nullable"] is True and "default" not in props["seed"]


# --------------------------------------------------------------------------- (b) streaming


@pytest.mark.parametrize(
    "header, decorator",
    [
        ("import cog", "@cog.streaming"),
        ("import cog", "@cog.streaming()"),
        ("import cog as c", "@c.streaming"),
        ("from cog import streaming", "@streaming"),
        ("from cog import streaming as stream", "@stream"),
    ],
)
def test_streaming_decorator_is_detected_in_every_spelling(header, decorator):
    source = f"{header}\nclass Predictor:\n    {decorator}\n    def predict(self): ...\n"

    assert streaming_from_source(source, "Predictor") is True


def test_streaming_is_not_detected_on_other_methods_classes_or_undecorated_predict():
    source = textwrap.dedent("""
        import cog

        class Other:
            @cog.streaming
            def predict(self): ...

        class Predictor:
            @cog.streaming
            def helper(self): ...

            @cog.concurrent(max=2)
            async def predict(self): ...
    """)

    assert streaming_from_source(source, "Predictor") is False


def test_streaming_is_detected_on_run_and_on_function_predictors():
    source = textwrap.dedent("""
        import cog

        @cog.streaming
        def run(): ...

        class P:
            @cog.streaming
            def run(self): ...
    """)

    assert streaming_from_source(source, "run") is True
    assert streaming_from_source(source, "P") is True


def test_streaming_predictor_gets_x_cog_streaming_and_others_do_not(tmp_path):
    streaming = make_model(
        tmp_path / "streaming",
        """
        from collections.abc import Iterator

        import cog
        from cog import BasePredictor


        class Predictor(BasePredictor):
            @cog.streaming
            def predict(self, n: int = 3) -> Iterator[str]:
                yield from map(str, range(n))
        """,
    )
    plain = make_model(tmp_path / "plain", HELLO_SOURCE)

    streaming_doc = generate_schema(streaming)
    plain_doc = generate_schema(plain)

    assert streaming_doc["paths"]["/predictions"]["post"]["x-cog-streaming"] is True
    assert streaming_doc["components"]["schemas"]["Output"]["x-cog-array-type"] == "iterator"
    assert "x-cog-streaming" not in plain_doc["paths"]["/predictions"]["post"]


# --------------------------------------------------------------------------- (c) ensure_schema


def test_ensure_schema_writes_the_file_coglet_reads(tmp_path):
    model = make_model(tmp_path / "hello", HELLO_SOURCE)

    document = ensure_schema(model)

    written = model / SCHEMA_RELPATH
    assert written.is_file()
    assert json.loads(written.read_text()) == document
    assert document["components"]["schemas"]["Input"]["properties"]["text"]["default"] == "world"


def test_ensure_schema_reuses_an_existing_file_without_loading_the_predictor(tmp_path):
    model = make_model(tmp_path / "hello", HELLO_SOURCE)
    path = model / SCHEMA_RELPATH
    document = ensure_schema(model)
    document["info"]["version"] = "edited-by-hand"
    path.write_text(json.dumps(document))
    # Would fail loudly if ensure_schema imported the predictor again.
    (model / "predict.py").write_text("raise RuntimeError('must not be imported')\n")

    assert ensure_schema(model)["info"]["version"] == "edited-by-hand"


def test_ensure_schema_rejects_an_existing_file_that_is_not_json(tmp_path):
    model = make_model(tmp_path / "hello", HELLO_SOURCE)
    (model / ".cog").mkdir()
    (model / SCHEMA_RELPATH).write_text("{not json")

    with pytest.raises(CogProjectError, match="invalid JSON"):
        ensure_schema(model)


# --------------------------------------------------------------------------- (d) errors


def test_predictor_import_error_surfaces_the_python_error(tmp_path):
    model = make_model(tmp_path / "broken", "import definitely_missing_module_xyz\n")

    with pytest.raises(CogProjectError) as excinfo:
        generate_schema(model)

    assert "No module named 'definitely_missing_module_xyz'" in str(excinfo.value)
    assert not (model / SCHEMA_RELPATH).exists()


def test_predictor_exception_at_import_time_surfaces_the_python_error(tmp_path):
    model = make_model(tmp_path / "broken", "raise ValueError('weights checksum mismatch')\n")

    with pytest.raises(CogProjectError, match="ValueError: weights checksum mismatch"):
        generate_schema(model)


def test_unsupported_signature_is_reported(tmp_path):
    source = """
        from cog import BasePredictor

        class Predictor(BasePredictor):
            def predict(self, x: int): ...
    """
    model = make_model(tmp_path / "no-return", source)

    with pytest.raises(CogProjectError, match="must have a return type annotation"):
        generate_schema(model)


def test_output_printed_while_importing_does_not_corrupt_the_document(tmp_path):
    model = make_model(
        tmp_path / "chatty", "print('loading weights...')\n" + textwrap.dedent(HELLO_SOURCE)
    )

    assert generate_schema(model)["components"]["schemas"]["Output"] == {
        "title": "Output",
        "type": "string",
    }


@pytest.mark.parametrize(
    "cog_yaml, message",
    [
        (None, "cog.yaml not found"),
        ("build: [unclosed", "invalid YAML"),
        ("- just\n- a list\n", "mapping"),
        ('build:\n  python_version: "3.11"\n', "no `predict:` entry"),
        ('predict: "predict.py"\n', "not of the form"),
        ('predict: "predict:Predictor"\n', "not of the form"),
        ('predict: "../elsewhere.py:Predictor"\n', "inside the model directory"),
        ('predict: "predict.py:Predictor"\ntrain: "train"\n', "`train: 'train'` is not of"),
    ],
)
def test_invalid_cog_yaml_raises_cog_project_error_naming_the_problem(tmp_path, cog_yaml, message):
    if cog_yaml is not None:
        (tmp_path / "cog.yaml").write_text(cog_yaml)

    with pytest.raises(CogProjectError, match=message):
        read_cog_config(tmp_path)


def test_a_trainer_adds_its_training_schemas_and_paths_to_the_same_document():
    document = generate_schema(FIXTURES / "trainable")
    schemas = document["components"]["schemas"]
    assert list(schemas["Input"]["properties"]) == ["name"]
    training = schemas["TrainingInput"]
    assert list(training["properties"]) == ["phrase", "seconds"]
    assert training["required"] == ["phrase"] and training["title"] == "TrainingInput"
    assert schemas["TrainingOutput"]["properties"]["weights"]["format"] == "uri"
    assert {"/trainings", "/trainings/{training_id}/cancel"} <= set(document["paths"])
    committed = json.loads((FIXTURES / "trainable" / SCHEMA_RELPATH).read_text())
    assert committed == document


def test_predictor_ref_splits_module_file_and_name():
    assert predictor_ref({"predict": "predict.py:Predictor"}) == ("predict.py", "Predictor")
    assert predictor_ref({"predict": "src/model.py:run"}) == ("src/model.py", "run")


def test_missing_predictor_module_is_reported_without_a_subprocess(tmp_path):
    (tmp_path / "cog.yaml").write_text(COG_YAML)

    with pytest.raises(CogProjectError, match="predictor module not found"):
        generate_schema(tmp_path)


# --------------------------------------------------------------------------- (e) examples


def test_all_demo_models_are_present():
    assert set(EXAMPLE_NAMES) >= {
        "hello",
        "hello-concurrent",
        "image-filter",
        "input-types",
        "slow-progress",
        "text-stream",
    }


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_committed_schema_matches_the_generator(name):
    committed = EXAMPLES / name / SCHEMA_RELPATH
    regenerate = f"python -m marketplace.catalog.cogschema examples/{name} --write"
    assert committed.is_file(), f"run: {regenerate}"

    assert json.loads(committed.read_text()) == generate_schema(EXAMPLES / name), (
        f"schema drifted; regenerate with: {regenerate}"
    )


def test_only_the_text_stream_example_streams():
    streaming = {
        name
        for name in EXAMPLE_NAMES
        if json.loads((EXAMPLES / name / SCHEMA_RELPATH).read_text())["paths"]["/predictions"][
            "post"
        ].get("x-cog-streaming")
    }

    assert streaming == {"text-stream"}


# --------------------------------------------------------------------------- (f) real coglet


def _request(url: str, body: dict | None = None, headers: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {})
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def cog_server(tmp_path: Path) -> Iterator:
    """A real Cog server for an example directory, through the local runtime; always stopped."""
    runtime = LocalRuntime(log_dir=tmp_path)
    with contextlib.ExitStack() as stack:

        def start(model_dir: Path, mode: str = "predict") -> str:
            spec = InstanceSpec(
                instance_id=1,
                host_name="cogschema-test",
                version_id="0" * 64,
                source_path=str(model_dir),
                mode=mode,
            )
            running = stack.enter_context(runtime.instance(spec))
            runtime.wait_ready(running, timeout=60)
            return running.url

        yield start


@pytest.mark.slow
def test_coglet_validates_inputs_with_the_generated_schema(cog_server):
    base = cog_server(EXAMPLES / "input-types")

    status, body = _request(f"{base}/predictions", {"input": {"count": 11}})
    assert status == 422
    assert json.loads(body)["detail"][0]["loc"] == ["body", "input", "count"]

    valid = {"count": 10, "color": "red", "level": 3, "api_token": "hunter2-secret", "tags": ["a"]}
    status, body = _request(f"{base}/predictions", {"input": valid})
    assert status == 200
    prediction = json.loads(body)
    assert prediction["status"] == "succeeded"
    summary = json.loads(prediction["output"])
    assert summary["count"] == 10 and summary["level"] == 3 and summary["tags"] == ["a"]
    assert summary["api_token"].startswith("14 chars")
    assert "hunter2" not in body

    status, body = _request(f"{base}/openapi.json")
    assert status == 200
    assert json.loads(body) == json.loads((EXAMPLES / "input-types" / SCHEMA_RELPATH).read_text())


@pytest.mark.slow
def test_coglet_streams_server_sent_events_when_the_schema_says_so(cog_server):
    base = cog_server(EXAMPLES / "text-stream")

    status, body = _request(
        f"{base}/predictions",
        {"input": {"max_tokens": 3, "seed": 1}},
        headers={"Accept": "text/event-stream"},
    )

    assert status == 200
    assert body.count("event: output") == 3
    assert "event: completed" in body


@pytest.mark.slow
def test_coglet_in_train_mode_validates_against_training_input(cog_server):
    base = cog_server(FIXTURES / "trainable", mode="train")
    status, body = _request(f"{base}/trainings", {"id": "t1", "input": {"name": "x"}})
    assert status == 422 and "phrase" in body
    status, body = _request(f"{base}/trainings", {"id": "t2", "input": {"phrase": "yo"}})
    assert status == 200, body
    assert json.loads(body)["output"]["weights"].startswith("data:")
