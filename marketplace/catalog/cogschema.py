"""Generate a Cog model's OpenAPI schema (`.cog/openapi_schema.json`) without the Cog CLI.

Cog >= 0.20 ships no Python schema generator (the Go CLI builds it statically), yet coglet only
validates inputs - and only serves `/openapi.json` - when `.cog/openapi_schema.json` exists. For
models built without the Cog CLI we assemble the document ourselves from what
`cog._inspector.create_predictor()` reports, following the conventions Cog's own generators use
(docs: /work/shared/reference/cog-contract.md §3, §4.5).

Two halves live here:

* the generator proper
  (`python -m marketplace.catalog.cogschema <model_dir> [--write] [--stdout]`). It imports the
  model's predict module, i.e. executes user code, so it must only ever run in a subprocess
  (inside the model's image or venv), never inside the Django process;
* parent-side helpers (`read_cog_config`, `predictor_ref`, `generate_schema`, `ensure_schema`) that
  are safe to import from Django: they never import `cog`/`coglet` or the model's code.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import json
import os
import pathlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml  # a dependency of cog itself, so also present in every model image

SCHEMA_RELPATH = Path(".cog") / "openapi_schema.json"
# The directory that contains the `marketplace` package; the child needs it on PYTHONPATH.
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
STDERR_TAIL_CHARS = 2000


class CogProjectError(Exception):
    """The model directory is not a usable Cog project (bad cog.yaml, predictor fails to load)."""


# --------------------------------------------------------------------------- cog.yaml


def read_cog_config(model_dir: Path) -> dict:
    """Parse `<model_dir>/cog.yaml`; raise CogProjectError unless it has a valid `predict:`."""
    path = Path(model_dir) / "cog.yaml"
    if not path.is_file():
        raise CogProjectError(f"{path}: cog.yaml not found")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CogProjectError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise CogProjectError(f"{path}: expected a mapping at the top level")
    predictor_ref(config)  # validates `predict:` so callers get one early, precise error
    trainer_ref(config)
    return config


def predictor_ref(config: dict) -> tuple[str, str]:
    """Split `predict: "predict.py:Predictor"` into ("predict.py", "Predictor")."""
    ref = config.get("predict")
    if not ref:
        raise CogProjectError('cog.yaml has no `predict:` entry (expected "predict.py:Predictor")')
    return _split_ref("predict", ref)


def trainer_ref(config: dict) -> tuple[str, str] | None:
    """Split `train: "train.py:train"` likewise; None for a model that cannot be trained."""
    ref = config.get("train")
    return _split_ref("train", ref) if ref else None


def _split_ref(key: str, ref: Any) -> tuple[str, str]:
    module_file, _, name = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    module_file, name = module_file.strip(), name.strip()
    if not module_file.endswith(".py") or not name.isidentifier():
        raise CogProjectError(f'cog.yaml `{key}: {ref!r}` is not of the form "{key}.py:Name"')
    if Path(module_file).is_absolute() or ".." in Path(module_file).parts:
        raise CogProjectError(f"cog.yaml `{key}: {ref!r}` must point inside the model directory")
    return module_file, name


# --------------------------------------------------------------------------- streaming detection


def _streaming_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to the `cog` module and to `cog.streaming` by the module's imports."""
    module_aliases, decorator_aliases = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            module_aliases |= {a.asname or a.name for a in node.names if a.name == "cog"}
        elif isinstance(node, ast.ImportFrom) and node.module == "cog":
            decorator_aliases |= {a.asname or a.name for a in node.names if a.name == "streaming"}
    return module_aliases, decorator_aliases


def _is_streaming_decorator(node: ast.expr, modules: set[str], names: set[str]) -> bool:
    if isinstance(node, ast.Call):  # @cog.streaming() is as valid as @cog.streaming
        node = node.func
    if isinstance(node, ast.Name):
        return node.id in names
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "streaming"
        and isinstance(node.value, ast.Name)
        and node.value.id in modules
    )


def streaming_from_source(source: str, predictor_name: str) -> bool:
    """True when the predictor's run()/predict() (or the predictor function) is @cog.streaming.

    `cog.streaming` returns the function unchanged, so the flag is invisible at runtime; the Cog CLI
    finds it statically and so do we. Only the module's own source is inspected (a decorated
    method inherited from another module is not detected).
    """
    tree = ast.parse(source)
    modules, names = _streaming_names(tree)
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions) and node.name == predictor_name:
            target: ast.AST | None = node
        elif isinstance(node, ast.ClassDef) and node.name == predictor_name:
            methods = {n.name: n for n in node.body if isinstance(n, functions)}
            # Same precedence as cog's inspector: run() wins, predict() is the legacy name.
            target = methods.get("run") or methods.get("predict")
        else:
            continue
        if isinstance(target, functions):
            return any(_is_streaming_decorator(d, modules, names) for d in target.decorator_list)
    return False


# --------------------------------------------------------------------------- document assembly


def _title(name: str) -> str:
    return name.replace("_", " ").title()


def _json_value(value: Any) -> Any:
    """Defaults/choices as JSON: cog normalises Path defaults to pathlibs, enums to members."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _input_property(field: Any, accept: str | None) -> tuple[dict, dict | None, bool]:
    """(property, enum component or None, required?) for one cog._adt.InputField."""
    from cog import _adt

    ft = field.type
    optional = ft.repetition in (_adt.Repetition.OPTIONAL, _adt.Repetition.OPTIONAL_REPEATED)
    secret = ft.primitive is _adt.PrimitiveType.SECRET
    prop: dict[str, Any] = {"x-order": field.order}
    component = None
    if field.choices is not None:
        # Cog's convention: an enum component named after the input, referenced through allOf,
        # and no title/type on the property itself (consumers must resolve the $ref).
        component = {
            "title": field.name,
            "description": "An enumeration.",
            "enum": _json_value(list(field.choices)),
            "type": ft.primitive.json_type()["type"],
        }
        prop["allOf"] = [{"$ref": f"#/components/schemas/{field.name}"}]
    else:
        prop["title"] = _title(field.name)
        prop.update(ft.json_type())
        if accept and ft.primitive in (_adt.PrimitiveType.PATH, _adt.PrimitiveType.FILE):
            prop["x-cog-accept"] = accept
    if optional:
        prop["nullable"] = True

    default = field.default
    if isinstance(default, dataclasses.Field):  # default_factory defaults have no JSON literal
        default = None
    # A Secret's default is not emitted: the schema is public and the value is meant to be hidden.
    if default is not None and not secret:
        prop["default"] = _json_value(ft.json_encode(default))
    if field.description is not None:
        prop["description"] = field.description
    # ge/le arrive as floats from the inspector (256 -> 256.0), as cog's Python generators emit.
    constraints = {"minimum": field.ge, "maximum": field.le, "minLength": field.min_length,
                   "maxLength": field.max_length, "pattern": field.regex,
                   "deprecated": field.deprecated}  # fmt: skip
    prop.update((key, value) for key, value in constraints.items() if value is not None)
    # Mirrors cog: no default => required, even `x: int = Input(default=None)` (non-Optional),
    # except Secret inputs, which the Go generator treats as optional.
    required = field.default is None and not optional and not secret
    return prop, component, required


def _accept_hints(module: Any, predictor_name: str) -> dict[str, str]:
    """`Input(accept=...)` per parameter; cog's InputField drops it, so read the raw FieldInfo."""
    import inspect

    from cog.input import FieldInfo

    obj = getattr(module, predictor_name)
    if inspect.isclass(obj):
        obj = obj.__dict__.get("run") or obj.__dict__.get("predict")
    if obj is None:
        return {}
    return {
        name: param.default.accept
        for name, param in inspect.signature(obj).parameters.items()
        if isinstance(param.default, FieldInfo) and param.default.accept
    }


def _response(schema: dict, description: str = "Successful Response") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _fixed_schemas() -> dict:
    """The components every Cog document carries, in the shape of cog's generators (FastAPI era)."""

    def s(title: str, **extra: Any) -> dict:
        return {"title": title, "type": "string", **extra}

    # fmt: off
    return {
        "HTTPValidationError": {"title": "HTTPValidationError", "type": "object", "properties": {
            "detail": {"title": "Detail", "type": "array", "items": _ref("ValidationError")}}},
        "ValidationError": {
            "title": "ValidationError", "required": ["loc", "msg", "type"], "type": "object",
            "properties": {
                "loc": {"title": "Location", "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                "msg": s("Message"), "type": s("Error Type")}},
        "PredictionRequest": {"title": "PredictionRequest", "type": "object", "properties": {
            "id": s("Id"), "input": _ref("Input")}},
        "PredictionResponse": {"title": "PredictionResponse", "type": "object", "properties": {
            "input": _ref("Input"), "output": _ref("Output"), "id": s("Id"),
            "version": s("Version"), "created_at": s("Created At", format="date-time"),
            "started_at": s("Started At", format="date-time"),
            "completed_at": s("Completed At", format="date-time"), "status": s("Status"),
            "error": s("Error"), "logs": s("Logs"),
            "metrics": {"title": "Metrics", "type": "object"}}},
        "Status": {"title": "Status", "description": "An enumeration.", "type": "string",
                   "enum": ["starting", "processing", "succeeded", "canceled", "failed"]},
    }
    # fmt: on


def _inputs_schema(info: Any, accept: dict[str, str], title: str) -> tuple[dict, dict]:
    """(the ``Input``-like object schema, its enum components) of a cog._adt.PredictorInfo."""
    properties: dict[str, dict] = {}
    enums: dict[str, dict] = {}
    required: list[str] = []
    for field in sorted(info.inputs.values(), key=lambda f: f.order):
        prop, component, is_required = _input_property(field, accept.get(field.name))
        properties[field.name] = prop
        if component is not None:
            enums[field.name] = component
        if is_required:
            required.append(field.name)
    schema: dict[str, Any] = {"properties": properties, "type": "object", "title": title}
    if required:
        schema["required"] = required
    return schema, enums


def build_document(
    info: Any,
    *,
    streaming: bool,
    accept: dict[str, str] | None = None,
    train: Any = None,
    train_accept: dict[str, str] | None = None,
) -> dict:
    """Assemble the OpenAPI 3.0.2 document for a cog._adt.PredictorInfo (and, for a model with
    `train:`, its trainer's: `TrainingInput`/`TrainingOutput` and the `/trainings` paths, merged
    into the same document as Cog's Go generator does; predict wins on name clashes)."""
    input_schema, enums = _inputs_schema(info, accept or {}, "Input")
    # Enum components are named after their input; as with Cog, an input called e.g. "Status"
    # replaces the fixed component of that name - consumers have to live with that.
    schemas = {
        **_fixed_schemas(),
        "Input": input_schema,
        "Output": info.output.json_type(),
        **enums,
    }
    if train is not None:
        train_schema, train_enums = _inputs_schema(train, train_accept or {}, "TrainingInput")
        train_output = {**train.output.json_type(), "title": "TrainingOutput"}
        schemas = {
            **train_enums,
            "TrainingInput": train_schema,
            "TrainingOutput": train_output,
            "TrainingRequest": {"title": "TrainingRequest", "type": "object", "properties": {
                "id": {"title": "Id", "type": "string"}, "input": _ref("TrainingInput")}},
            "TrainingResponse": {"title": "TrainingResponse", "type": "object", "properties": {
                **schemas["PredictionResponse"]["properties"],
                "input": _ref("TrainingInput"), "output": _ref("TrainingOutput")}},
            **schemas,
        }  # fmt: skip

    invalid = _response(_ref("HTTPValidationError"), "Validation Error")
    predict_op: dict[str, Any] = {
        "summary": "Predict",
        "description": "Run a single prediction on the model",
        "operationId": "predict_predictions_post",
        "requestBody": {"content": {"application/json": {"schema": _ref("PredictionRequest")}}},
        "responses": {"200": _response(_ref("PredictionResponse")), "422": invalid},
    }
    if streaming:  # coglet reads this flag to allow `Accept: text/event-stream` (SSE)
        predict_op["x-cog-streaming"] = True
    cancel_id = {"required": True, "schema": {"title": "Prediction Id", "type": "string"},
                 "name": "prediction_id", "in": "path"}  # fmt: skip
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "Root", "operationId": "root__get", "responses": {
            "200": _response({})}}},
        "/health-check": {"get": {"summary": "Healthcheck",
                                  "operationId": "healthcheck_health_check_get",
                                  "responses": {"200": _response({})}}},
        "/predictions": {"post": predict_op},
        "/predictions/{prediction_id}/cancel": {"post": {
            "summary": "Cancel",
            "operationId": "cancel_predictions__prediction_id__cancel_post",
            "parameters": [cancel_id],
            "responses": {"200": _response({}), "422": invalid},
        }},
    }  # fmt: skip
    if train is not None:
        training_id = {**cancel_id, "name": "training_id",
                       "schema": {"title": "Training Id", "type": "string"}}  # fmt: skip
        paths["/trainings"] = {"post": {
            "summary": "Train", "operationId": "train_trainings_post",
            "requestBody": {"content": {"application/json": {"schema": _ref("TrainingRequest")}}},
            "responses": {"200": _response(_ref("TrainingResponse")), "422": invalid},
        }}  # fmt: skip
        paths["/trainings/{training_id}/cancel"] = {"post": {
            "summary": "Cancel Training",
            "operationId": "cancel_training_trainings__training_id__cancel_post",
            "parameters": [training_id],
            "responses": {"200": _response({}), "422": invalid},
        }}  # fmt: skip
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _generate_here(model_dir: Path) -> dict:
    """Child side: import the predictor (runs user code!) and build its document."""
    from cog._inspector import create_predictor

    config = read_cog_config(model_dir)
    module_file, name = predictor_ref(config)
    info, accept, source = _inspect(model_dir, module_file, name, create_predictor)
    train = train_accept = None
    if (ref := trainer_ref(config)) is not None:
        train, train_accept, _ = _inspect(model_dir, *ref, create_predictor)
    streaming = streaming_from_source(source, name)
    return build_document(
        info, streaming=streaming, accept=accept, train=train, train_accept=train_accept
    )


def _inspect(
    model_dir: Path, module_file: str, name: str, create_predictor: Any
) -> tuple[Any, dict[str, str], str]:
    """(PredictorInfo, accept hints, source) of ``module_file:name``."""
    import importlib

    source_path = model_dir / module_file
    if not source_path.is_file():
        raise CogProjectError(f"{source_path}: predictor module not found")
    # Import the way coglet does: module name = file stem, its directory first on sys.path.
    directory = str(source_path.parent.resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_name = source_path.stem
    info = create_predictor(module_name, name)
    accept = _accept_hints(importlib.import_module(module_name), name)
    return info, accept, source_path.read_text(encoding="utf-8")


def _dump(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_schema(model_dir: Path, document: dict) -> Path:
    """Write `<model_dir>/.cog/openapi_schema.json` atomically (coglet may be reading it)."""
    path = Path(model_dir) / SCHEMA_RELPATH
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(_dump(document), encoding="utf-8")
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m marketplace.catalog.cogschema", description=__doc__
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--write", action="store_true", help=f"write <model_dir>/{SCHEMA_RELPATH}")
    parser.add_argument("--stdout", action="store_true", help="print the document (default)")
    args = parser.parse_args(argv)
    model_dir = args.model_dir.resolve()
    # Anything the model prints while being imported (even from C) must not corrupt the JSON we
    # print: point fd 1 at stderr until the document is ready.
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        os.chdir(model_dir)  # relative paths in module-level model code resolve like in Cog
        document = _generate_here(model_dir)
    except Exception as exc:  # report any failure of user code as one readable line at the end
        import traceback

        traceback.print_exc()
        print(f"cogschema: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        sys.stdout.flush()
        os.dup2(real_stdout, 1)
        os.close(real_stdout)
    if args.write:
        write_schema(model_dir, document)
    if args.stdout or not args.write:
        sys.stdout.write(_dump(document))
    return 0


# --------------------------------------------------------------------------- parent side


def generate_schema(model_dir: Path, *, python: str = sys.executable, timeout: float = 120) -> dict:
    """Run the generator in a subprocess (cwd=model_dir) and return the document.

    `python` must have cog installed (the model's venv, or the interpreter of its image).
    """
    model_dir = Path(model_dir).resolve()
    module_file, _ = predictor_ref(read_cog_config(model_dir))  # fail fast, without a subprocess
    if not (model_dir / module_file).is_file():
        raise CogProjectError(f"{model_dir / module_file}: predictor module not found")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep __pycache__ out of the model directory
    try:
        proc = subprocess.run(
            [python, "-m", "marketplace.catalog.cogschema", ".", "--stdout"],
            cwd=model_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CogProjectError(f"{model_dir}: schema generation timed out after {timeout}s") from exc
    except OSError as exc:
        raise CogProjectError(f"{model_dir}: cannot run {python}: {exc}") from exc
    if proc.returncode != 0:
        tail = proc.stderr.strip()[-STDERR_TAIL_CHARS:]
        raise CogProjectError(
            f"{model_dir}: loading the predictor failed (exit {proc.returncode}):\n{tail}"
        )
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise CogProjectError(f"{model_dir}: generator printed invalid JSON: {exc}") from exc


def ensure_schema(model_dir: Path) -> dict:
    """Return `.cog/openapi_schema.json`, generating and writing it first if it does not exist.

    An existing file is trusted as is (it may come from `cog build`); coglet needs the file on
    disk to validate inputs, hence the write.
    """
    path = Path(model_dir) / SCHEMA_RELPATH
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CogProjectError(f"{path}: invalid JSON: {exc}") from exc
    document = generate_schema(Path(model_dir))
    write_schema(Path(model_dir), document)
    return document


if __name__ == "__main__":
    sys.exit(main())
