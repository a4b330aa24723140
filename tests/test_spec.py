"""Spec validation: the bad-spec corpus, the CLI, the shipped examples, the JSON Schema,
did-you-mean suggestions, and fuzzing of ``parse_spec`` / ``load_spec``.

Every file in ``tests/data/bad_specs`` holds exactly one defect and starts with

    # expect: <field> | <substring of the message>

where ``<field>`` is the dotted field the ``SpecError`` must name (``-``: no field, e.g. a
YAML syntax error). Data paths in those specs resolve against that folder, so they point at
``tests/data/csv``.

Cases that expose a bug in ``src/`` are listed in ``KNOWN_BUGS`` and run as strict xfails:
when the bug is fixed the test starts passing, and strict mode makes the suite say so.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.cli import tunehouse_main
from tunehouse import load_spec  # validating: the data and the model too
from tunehouse.errors import SpecError, did_you_mean
from tunehouse.spec import Spec, json_schema, parse_spec

ROOT = Path(__file__).resolve().parents[1]
BAD_DIR = ROOT / "tests" / "data" / "bad_specs"
CSV_DIR = ROOT / "tests" / "data" / "csv"
CORPUS = sorted(BAD_DIR.glob("*.yaml"))
EXAMPLES = sorted((ROOT / "search_spaces").glob("*.yaml"))

# -- known bugs in src/ (strict xfails) ------------------------------------------------------
KNOWN_BUGS: dict[str, str] = {}

#: The line the ``file:LINE:`` prefix must show (lines count the ``# expect:`` comment).
EXPECTED_LINES: dict[str, int] = {
    "empty_file": 1,
    "top_level_list": 1,
    "yaml_bad_indentation": 6,
    "yaml_tab_indent": 5,
    "type_num_samples_string": 10,
    "type_search_list": 8,
    "type_name_number": 2,
    "unknown_key_num_sample": 10,
    "unknown_key_seeds": 2,
    "unknown_key_parms": 8,
    "unknown_key_scael": 14,
    "unknown_key_hold_out": 14,
    "missing_estimator": 6,
    "space_empty": 11,
    "space_low_gt_high": 12,
    "space_grid_over_uniform": 12,
    "space_unknown_domain_type": 12,
    "space_choice_empty": 12,
    "search_num_samples_zero": 10,
    "search_max_concurrent_zero": 11,
    "search_bad_sampler": 10,
    "eval_cv_one": 14,
    "eval_cv_and_holdout": 13,
    "data_unknown_builtin": 5,
    "data_path_missing": 5,
    "data_unsupported_extension": 5,
    "data_target_typo": 6,
    "data_feature_missing": 7,
    "data_nan_target": 6,
    "data_missing_without_impute": 14,
    "model_unknown_class": 6,
    "model_unknown_fixed_param": 9,
    "model_unknown_space_param": 12,
    "metric_unknown": 7,
    "metric_bad_mode": 9,
    "name_slash": 2,
    "seed_negative": 2,
    "resources_cpus_zero": 14,
    "time_budget_negative": 13,
    "failure_max_retries_negative": 14,
    "failure_max_retries_fraction": 14,
    "failure_max_failed_trials_zero": 14,
    "failure_unknown_key": 14,
    "failure_not_a_mapping": 13,
    "resources_memory_zero": 14,
    "resources_memory_with_unit": 14,
    "resources_memory_unknown_key": 14,
    "checkpoints_unknown_keep": 13,
    "checkpoints_best_n_zero": 13,
    "checkpoints_best_n_with_none": 15,
    "checkpoints_best_n_with_all": 13,
    # known bugs: where the line should be once fixed
    "unknown_key_algoritm": 9,
    "unknown_key_modle": 6,
    "unknown_key_domain_lgo": 12,
    "unknown_key_metric_mdoe": 9,
    "metric_duplicate": 7,
    "yaml_unclosed_quote": 2,
}

#: A representative subset that also goes through the CLI: ``CLI_PROCESS_CASES`` as real
#: ``tunehouse validate`` processes, the others (and the examples) through ``main(argv)``.
CLI_CASES = [
    "yaml_tab_indent",
    "empty_file",
    "unknown_key_num_sample",
    "missing_task",
    "space_loguniform_low_zero",
    "data_path_missing",
    "data_target_typo",
    "data_mixed_column",
    "model_not_estimator_function",
    "metric_unknown",
]
CLI_PROCESS_CASES = {"yaml_tab_indent", "data_mixed_column"}  # a YAML error, a data error


def _expectation(path: Path) -> tuple[str | None, str]:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect:"), f"{path.name}: first line must be '# expect: F | S'"
    field, _, needle = first.removeprefix("# expect:").partition("|")
    field, needle = field.strip(), needle.strip()
    assert field and needle, f"{path.name}: malformed expect line {first!r}"
    return (None if field == "-" else field), needle


def _case(path: Path):
    marks = []
    if path.stem in KNOWN_BUGS:
        marks.append(pytest.mark.xfail(reason=KNOWN_BUGS[path.stem], strict=True))
    return pytest.param(path, id=path.stem, marks=marks)


def _assert_located(err: SpecError, path: Path, field: str | None, needle: str) -> str:
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg, f"message is not one line: {msg!r}"
    assert msg.startswith(str(path)), msg
    prefix = f"{path}:{err.line}: " if err.line is not None else f"{path}: "
    assert msg.startswith(prefix), f"{msg!r} should start with {prefix!r}"
    assert err.field == field, f"field {err.field!r} != {field!r} in {msg!r}"
    if field is not None:
        assert f"{field}: " in msg, msg
    assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


# -- (1) the corpus through the library ------------------------------------------------------
def test_corpus_is_well_formed():
    assert len(CORPUS) >= 45
    for path in CORPUS:
        _expectation(path)
    stems = {p.stem for p in CORPUS}
    for table in (KNOWN_BUGS, EXPECTED_LINES, dict.fromkeys(CLI_CASES)):
        assert set(table) <= stems, set(table) - stems
    assert not set(CLI_CASES) & set(KNOWN_BUGS)
    assert not CLI_PROCESS_CASES - set(CLI_CASES)
    # every CSV a spec names exists (except in the case about a missing file)
    for path in CORPUS:
        for ref in re.findall(r"\.\./csv/(\S+\.csv)", path.read_text(encoding="utf-8")):
            assert (CSV_DIR / ref).is_file() or path.stem == "data_path_missing", (path, ref)


@pytest.mark.parametrize("path", [_case(p) for p in CORPUS])
def test_bad_spec_raises_one_located_spec_error(path: Path):
    field, needle = _expectation(path)
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    err = info.value
    _assert_located(err, path, field, needle)
    n_lines = len(path.read_text(encoding="utf-8").splitlines())
    if err.line is not None:
        assert 1 <= err.line <= max(n_lines, 1)
    if path.stem in EXPECTED_LINES:
        assert err.line == EXPECTED_LINES[path.stem], str(err)


@pytest.mark.parametrize(
    ("stem", "line", "field"),
    [
        ("unknown_key_num_sample", 10, "search.num_sample"),
        ("yaml_bad_indentation", 6, None),
        ("model_unknown_fixed_param", 9, "model.params.n_estimator"),
        ("metric_bad_mode", 9, "metrics.0.mode"),
        ("data_target_typo", 6, "data.target"),
        ("space_grid_over_uniform", 12, "space.min_impurity_decrease"),
    ],
)
def test_line_prefix_points_at_the_offending_line(stem: str, line: int, field: str | None):
    path = BAD_DIR / f"{stem}.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert str(info.value).startswith(f"{path}:{line}: ")
    offending = path.read_text(encoding="utf-8").splitlines()[line - 1]
    if field is not None:
        assert field.split(".")[-1] in offending, offending


def test_missing_file_and_directory_are_spec_errors(tmp_path: Path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(bad)


def test_key_with_newline_still_gives_one_line(tmp_path: Path):
    path = tmp_path / "nl.yaml"
    path.write_text(EXAMPLES[0].read_text(encoding="utf-8") + '"oops\\nkey": 1\n', encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert "\n" not in str(info.value)


# -- (2) the same corpus through the real CLI ------------------------------------------------
def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunehouse", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def cli_results() -> dict[str, subprocess.CompletedProcess[str]]:
    """Run the CLI subset (and one run over the examples, key ``examples``) once: the real
    processes in parallel (each pays the import cost), the rest in this process meanwhile."""
    jobs = {s: ("validate", str(BAD_DIR / f"{s}.yaml")) for s in CLI_CASES}
    jobs["examples"] = ("validate", *map(str, EXAMPLES))
    processes = CLI_PROCESS_CASES
    with ThreadPoolExecutor(max_workers=len(processes)) as pool:
        futures = {key: pool.submit(_cli, *jobs[key]) for key in processes}
        results = {key: tunehouse_main(*args) for key, args in jobs.items() if key not in processes}
        return results | {key: f.result() for key, f in futures.items()}


@pytest.mark.parametrize("stem", CLI_CASES)
def test_cli_validate_rejects_bad_spec(stem: str, cli_results):
    path = BAD_DIR / f"{stem}.yaml"
    field, needle = _expectation(path)
    proc = cli_results[stem]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.stderr.endswith("\n")
    line = lines[0]
    assert line.startswith(f"error: {path}"), line
    if field is not None:
        assert f"{field}: " in line
    assert needle in line
    if stem in EXPECTED_LINES:
        assert line.startswith(f"error: {path}:{EXPECTED_LINES[stem]}: ")


def test_cli_validate_accepts_examples(cli_results):
    proc = cli_results["examples"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout.splitlines()
    assert len(out) == len(EXAMPLES)
    for path, line in zip(EXAMPLES, out, strict=True):
        assert line.startswith(f"{path}: ok ("), line


# -- (3) every shipped example validates ----------------------------------------------------
def test_there_are_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_spec_validates(path: Path):
    spec = load_spec(path)
    assert isinstance(spec, Spec)
    assert spec.path == path.resolve()
    assert spec.space and spec.metrics
    assert spec.mode in ("min", "max")
    # parse-only validation agrees, and the canonical hash ignores formatting
    again = parse_spec(path.read_text(encoding="utf-8"), file=str(path))
    assert again.spec_hash == spec.spec_hash


# -- (4) the JSON Schema --------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_schema() -> dict[str, Any]:
    proc = _cli("schema")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_schema_is_valid_json_schema(cli_schema: dict[str, Any]):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validators.validator_for(cli_schema).check_schema(cli_schema)
    assert cli_schema["type"] == "object"
    props = cli_schema["properties"]
    assert {"space", "search", "model", "data", "metrics", "task"} <= set(props)
    assert {"task", "data", "model", "metrics", "search", "space"} <= set(cli_schema["required"])
    assert cli_schema == json.loads(json.dumps(json_schema()))
    failure = cli_schema["$defs"]["FailureSpec"]
    assert set(failure["properties"]) == {"max_retries", "max_failed_trials"}
    assert failure["additionalProperties"] is False
    memory = cli_schema["$defs"]["Resources"]["properties"]["memory_mb"]
    jsonschema.validate(512, memory)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(0, memory)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_validate_against_schema(path: Path, cli_schema: dict[str, Any]):
    jsonschema = pytest.importorskip("jsonschema")
    instance = yaml.safe_load(path.read_text(encoding="utf-8"))
    jsonschema.validate(instance, cli_schema)


# -- (5) did-you-mean suggestions ------------------------------------------------------------
QUICK = """\
name: t
task: classification
data:
  sklearn: iris
model: sklearn.tree.DecisionTreeClassifier
metrics: [accuracy]
search:
  algorithm: random
  num_samples: 3
space:
  max_depth: {type: int, low: 1, high: 5}
"""

#: (what to replace in QUICK, replacement, field, suggestion) for parse-time suggestions.
PARSE_SUGGESTIONS = [
    ("  num_samples: 3", "  num_smaples: 3", "search.num_smaples", "num_samples"),
    ("  num_samples: 3", "  num_samples: 3\n  max_concurent: 2", "search.max_concurent", "max_concurrent"),
    ("  num_samples: 3", "  num_samples: 3\n  samplr: tpe", "search.samplr", "sampler"),
    ("name: t", "name: t\nresorces: {cpus: 1}", "resorces", "resources"),
    ("name: t", "name: t\ntime_budget: 10", "time_budget", "time_budget_s"),
    ("name: t", "name: t\nevaluation: {tset_size: 0.2}", "evaluation.tset_size", "test_size"),
    ("name: t", "name: t\npreprocess: {onehto: true}", "preprocess.onehto", "onehot"),
    ("name: t", "name: t\nresources: {cpu: 2}", "resources.cpu", "cpus"),
    ("  sklearn: iris", "  sklearn: iris\n  targte: target", "data.targte", "target"),
    ("{type: int,", "{type: integer,", "space.max_depth", "int"),
    ("{type: int, low: 1, high: 5}", "{type: choise, values: [1, 2]}", "space.max_depth", "choice"),
    ("  sklearn: iris", "  sklearn: wnie", "data.sklearn", "wine"),
    ("  sklearn: iris", "  sklearn: breast_cancr", "data.sklearn", "breast_cancer"),
]


@pytest.mark.parametrize(("old", "new", "field", "suggestion"), PARSE_SUGGESTIONS,
                         ids=[c[2] + "->" + c[3] for c in PARSE_SUGGESTIONS])
def test_parse_time_did_you_mean(old: str, new: str, field: str, suggestion: str):
    assert old in QUICK
    with pytest.raises(SpecError) as info:
        parse_spec(QUICK.replace(old, new, 1), file="s.yaml")
    err = info.value
    assert err.field == field, str(err)
    assert f"(did you mean {suggestion!r}?)" in str(err)


#: Suggestions that need the model or the data (load_spec with check).
LOAD_SUGGESTIONS = [
    ("model: sklearn.tree.DecisionTreeClassifier", "model: sklearn.tree.DecisionTreeClasifier",
     "model.estimator", "DecisionTreeClassifier"),
    ("  max_depth:", "  max_dpeth:", "space.max_dpeth", "max_depth"),
    ("model: sklearn.tree.DecisionTreeClassifier",
     "model: {estimator: sklearn.tree.DecisionTreeClassifier, params: {min_sample_leaf: 2}}",
     "model.params.min_sample_leaf", "min_samples_leaf"),
    ("metrics: [accuracy]", "metrics: [accuracy, roc_acu]", "metrics.1.name", "roc_auc"),
    ("metrics: [accuracy]", "metrics: [balanced_acuracy]", "metrics.0.name", "balanced_accuracy"),
    ("  sklearn: iris", "  sklearn: iris\n  features: [petal width]", "data.features",
     "petal width (cm)"),
    ("  sklearn: iris", "  sklearn: iris\n  target: targt", "data.target", "target"),
]


@pytest.mark.parametrize(("old", "new", "field", "suggestion"), LOAD_SUGGESTIONS,
                         ids=[c[2] + "->" + c[3] for c in LOAD_SUGGESTIONS])
def test_load_time_did_you_mean(tmp_path: Path, old: str, new: str, field: str, suggestion: str):
    assert old in QUICK
    path = tmp_path / "s.yaml"
    path.write_text(QUICK.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    err = info.value
    assert err.field == field, str(err)
    assert str(err).startswith(f"{path}:{err.line}: ") and err.line is not None
    assert f"(did you mean {suggestion!r}?)" in str(err)


def test_regression_metric_suggestion(tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text(
        QUICK.replace("classification", "regression")
        .replace("iris", "diabetes")
        .replace("DecisionTreeClassifier", "DecisionTreeRegressor")
        .replace("[accuracy]", "[rsme]"),
        encoding="utf-8",
    )
    with pytest.raises(SpecError, match=r"\(did you mean 'rmse'\?\)"):
        load_spec(path)


def test_no_suggestion_when_nothing_is_close():
    with pytest.raises(SpecError) as info:
        parse_spec(QUICK + "zzzzqqq: 1\n")
    msg = str(info.value)
    assert "unknown key 'zzzzqqq'" in msg and "did you mean" not in msg
    assert "allowed: name, seed, task" in msg
    assert did_you_mean("zzzzqqq", ["num_samples", "seed"]) == ""
    assert did_you_mean("sed", ["num_samples", "seed"]) == " (did you mean 'seed'?)"


def test_quick_spec_is_valid(tmp_path: Path):
    path = tmp_path / "q.yaml"
    path.write_text(QUICK, encoding="utf-8")
    assert load_spec(path).search.num_samples == 3


# -- (6) fuzzing ------------------------------------------------------------------------------
FUZZ = settings(
    max_examples=int(os.environ.get("TUNEHOUSE_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIELDS = [
    "name", "seed", "task", "data", "model", "preprocess", "evaluation", "metrics", "search",
    "space", "resources", "time_budget_s", "sklearn", "path", "target", "features", "estimator",
    "params", "impute", "scale", "onehot", "cv", "holdout", "test_size", "mode", "algorithm",
    "num_samples", "max_concurrent", "sampler", "cpus", "gpus", "type", "low", "high", "log",
    "values", "failure", "max_retries", "max_failed_trials", "memory_mb",
]
# Integers stay small and floats finite on purpose: huge ints and infinities hit known bugs
# (space_grid_int_huge, resources_cpus_infinite in KNOWN_BUGS), and a grid over an int range of
# ~1e9 would make grid_size() allocate gigabytes.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(FIELDS),
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=12,
)


def _outcome(fn, *args, **kwargs) -> Spec | SpecError:
    """Call and return the Spec or the SpecError; any other exception fails the test."""
    try:
        result = fn(*args, **kwargs)
    except SpecError as e:
        assert str(e), "empty message"
        return e
    assert isinstance(result, Spec)
    return result


@FUZZ
@given(doc=st.one_of(json_like, st.dictionaries(keys, json_like, max_size=8)))
def test_fuzz_parse_spec_random_documents(doc: Any):
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    _outcome(parse_spec, text, file="fuzz.yaml")


# YAML-ish fragments, tags and aliases included.
YAML_TOKENS = [
    "!!int ", "!!bool ", "!!timestamp ", "!!float ", "*a", "&a [*a]",
    "name: t", "task: regression", "search:", "space:", "  ", "\t", "\n", "- ", ": ", "[", "]",
    "{", "}", ",", "'", '"', "#", "&a ", "|", ">", "---", "...", "?", "%YAML 1.1", "x", "1",
    "-1", "1.5e3", ".nan", "null", "true", "~", "type: int", "low: 1", "high: 0", "algorithm: grid",
]


@FUZZ
@given(text=st.one_of(st.text(max_size=200),
                      st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join)))
def test_fuzz_parse_spec_random_text(text: str):
    _outcome(parse_spec, text, file="fuzz.yaml")


BASE_SPEC: dict[str, Any] = {
    "name": "fuzz",
    "seed": 1,
    "task": "classification",
    "data": {"sklearn": "iris"},
    "model": {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"min_samples_split": 2}},
    "preprocess": {"scale": "standard"},
    "evaluation": {"cv": 3, "test_size": 0.2},
    "metrics": ["accuracy", {"name": "f1", "mode": "max"}],
    "search": {"algorithm": "bayes", "num_samples": 5, "max_concurrent": 2, "sampler": "tpe"},
    "space": {
        "max_depth": {"type": "int", "low": 1, "high": 5},
        "min_impurity_decrease": {"type": "uniform", "low": 0.0, "high": 0.1},
        "ccp_alpha": {"type": "loguniform", "low": 0.0001, "high": 0.1},
        "criterion": ["gini", "entropy"],
    },
    "resources": {"cpus": 1},
    "time_budget_s": 60,
}
#: Values a mutation may plant as they are (keeps the mutants close to valid specs).
INTERESTING = [
    "grid", "random", "bayes", "classification", "regression", "clustering", "uniform",
    "loguniform", "int", "choice", "iris", "wine", "diabetes", "digits", "breast_cancer",
    "accuracy", "rmse", "silhouette", "roc_auc", "log_loss", "min", "max", "tpe", "cmaes", "gp",
    "sklearn.svm.LinearSVC", "sklearn.linear_model.LinearRegression", "sklearn.cluster.KMeans",
    "sklearn.ensemble.RandomForestClassifier", "sklearn.metrics.accuracy_score", "os.path",
    "tunehouse.nothing.Here", "label", "x1", str(CSV_DIR / "good.csv"),
    str(CSV_DIR / "text_column.csv"), str(CSV_DIR), "../x.csv", 0, 1, -1, 2, 3, 0.5, 1.5, 100001,
    "", [], {}, None, True, {"type": "int", "low": 1, "high": 3},
    {"type": "grid", "values": [1, 2]}, {"type": "uniform", "low": 0, "high": 1}, [1, 2],
    {"name": "accuracy"},
]
# deepcopy: a planted dict/list may be mutated further and must not alter INTERESTING itself
values = st.one_of(st.sampled_from(INTERESTING).map(copy.deepcopy), json_like)


def _nodes(node: Any, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _nodes(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _nodes(v, (*at, i))
    return out


def _get(doc: Any, at: tuple) -> Any:
    for part in at:
        doc = doc[part]
    return doc


@st.composite
def mutated_specs(draw) -> Any:
    """BASE_SPEC after 1-3 mutations: drop a key, change a value (and its type), add a key."""
    doc: Any = copy.deepcopy(BASE_SPEC)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.sampled_from(_nodes(doc)))
        op = draw(st.sampled_from(["drop", "change", "add"]))
        if op == "drop" and at:
            parent = _get(doc, at[:-1])
            del parent[at[-1]]
        elif op == "change" or (not at and op == "drop"):
            new = draw(values)
            if not at:
                doc = new
            else:
                _get(doc, at[:-1])[at[-1]] = new
        else:
            target = _get(doc, at)
            if isinstance(target, dict):
                target[draw(keys)] = draw(values)
            elif isinstance(target, list):
                target.append(draw(values))
            elif at:
                _get(doc, at[:-1])[at[-1]] = {draw(keys): draw(values)}
    return doc


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_base_spec_is_valid(fuzz_dir: Path):
    path = fuzz_dir / "base.yaml"
    path.write_text(yaml.safe_dump(BASE_SPEC, sort_keys=False), encoding="utf-8")
    assert isinstance(load_spec(path), Spec)


@FUZZ
@given(doc=mutated_specs())
def test_fuzz_load_spec_mutated_specs(doc: Any, fuzz_dir: Path):
    path = fuzz_dir / "mutant.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = _outcome(load_spec, str(path))
    if isinstance(result, SpecError):
        assert str(result).startswith(str(path))


@FUZZ
@given(doc=st.dictionaries(keys, json_like, max_size=8))
def test_fuzz_load_spec_random_documents(doc: Any, fuzz_dir: Path):
    path = fuzz_dir / "random.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = _outcome(load_spec, str(path))
    assert isinstance(result, SpecError)  # nothing random is a complete spec
    assert str(result).startswith(str(path))


# -- (7) the failure policy and the memory limit ----------------------------------------------
def test_failure_section_defaults_and_values():
    spec = parse_spec(QUICK)
    assert (spec.failure.max_retries, spec.failure.max_failed_trials) == (0, None)
    assert spec.resources.memory_mb is None
    spec = parse_spec(
        QUICK + "failure: {max_retries: 2, max_failed_trials: 5}\nresources: {memory_mb: 512}\n"
    )
    assert (spec.failure.max_retries, spec.failure.max_failed_trials) == (2, 5)
    assert spec.resources.memory_mb == 512


def test_new_fields_at_their_defaults_keep_the_spec_hash():
    """A spec file hashes as it did before ``failure`` and ``memory_mb`` existed (``before`` is
    what commit 6fa6719 computed), unless it sets them."""
    path = ROOT / "search_spaces" / "quickstart.yaml"
    before = "f925f8c4702eb3634957bb139243025f96d3c381071c42cd2a79539a26b2faaf"
    text = path.read_text(encoding="utf-8")
    assert parse_spec(text).spec_hash == before
    defaults = "failure: {max_retries: 0, max_failed_trials: null}\n"
    assert parse_spec(text + defaults).spec_hash == before
    assert parse_spec(text + "failure: {max_retries: 1}\n").spec_hash != before
    assert parse_spec(text + "resources: {memory_mb: 512}\n").spec_hash != before
    assert parse_spec(text + "checkpoints: {keep: all}\n").spec_hash == before
    assert parse_spec(text + "checkpoints: {keep: best}\n").spec_hash != before


def test_checkpoints_section_defaults_and_values():
    spec = parse_spec(QUICK)
    assert (spec.checkpoints.keep, spec.checkpoints.best_n) == ("all", 5)
    spec = parse_spec(QUICK + "checkpoints: {keep: best, best_n: 3}\n")
    assert (spec.checkpoints.keep, spec.checkpoints.best_n) == ("best", 3)
    assert parse_spec(QUICK + "checkpoints: {keep: none}\n").checkpoints.keep == "none"


#: Two errors found while loading the spec (before Ray starts: fast) and two found while the
#: data or the model is loaded, when the embedded Ray has started (slow).
RUN_CASES = ["yaml_unclosed_bracket", "unknown_key_modle",
             pytest.param("data_nan_target", marks=pytest.mark.slow),
             pytest.param("model_not_estimator_module", marks=pytest.mark.slow)]


@pytest.mark.parametrize("stem", RUN_CASES)
def test_cli_run_rejects_bad_spec_and_writes_nothing(stem: str, tmp_path: Path):
    """`run` (not only `validate`): exit 2, one located line, no catalog created, even when the
    error is only found while the data or the model is loaded (Ray has started by then)."""
    path = BAD_DIR / f"{stem}.yaml"
    _field, needle = _expectation(path)
    catalog = tmp_path / "catalog"
    proc = _cli("run", str(path), "--catalog", str(catalog))
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and needle in lines[0], proc.stderr
    assert not catalog.exists()


# -- command-line overrides (issue 11, item 18) -------------------------------------------------
def test_num_samples_override_is_validated_like_the_spec():
    from tunehouse.spec import MAX_NUM_SAMPLES, override_num_samples

    spec = load_spec(ROOT / "search_spaces" / "quickstart.yaml", check=False)
    for bad in (0, -3, MAX_NUM_SAMPLES + 1):
        with pytest.raises(SpecError) as info:
            override_num_samples(spec, bad)
        assert info.value.field == "--num-samples" and "search.num_samples" in str(info.value)
    new = override_num_samples(spec, 7)
    assert (new.search.num_samples, spec.search.num_samples) == (7, 20)  # a new spec; the old one is as it was
    assert new.path == spec.path and new.text == spec.text
    for path in EXAMPLES:  # an override to the same value is the same spec
        s = load_spec(path, check=False)
        assert override_num_samples(s, s.search.num_samples).spec_hash == s.spec_hash


@pytest.mark.parametrize("n", ["1000000", "0"])
def test_cli_run_num_samples_out_of_bounds_exits_2_before_ray(n: str, tmp_path: Path):
    catalog = tmp_path / "catalog"
    proc = _cli("run", str(ROOT / "search_spaces" / "quickstart.yaml"), "--num-samples", n,
                "--catalog", str(catalog), timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --num-samples: ") and "search.num_samples" in lines[0]
    assert not catalog.exists()
