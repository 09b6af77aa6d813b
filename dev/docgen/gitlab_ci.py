"""Read a GitLab CI configuration the way GitLab does, closely enough to draw its job graph.

Generic on purpose: it knows GitLab's keywords, not this template's jobs, so the diagram
follows whatever `.gitlab-ci.yml` the template generates.

What it does: local includes (also wildcards and nested includes), `extends` (multi-level,
deep merge, arrays replaced), `!reference` tags, `default:`, hidden `.jobs` excluded,
stages (with `.pre`/`.post`), `needs` (strings and `{job, optional}` maps), `parallel:
matrix`, and `workflow:rules` / `rules:` evaluated for a given pipeline source: `if:`
expressions (`==`, `!=`, `=~`, `!~`, `&&`, `||`, parentheses, `null`, variables),
`exists:` against the project's files, `changes:` assumed to match (it cannot be known
without a diff; GitLab also treats it as true in tag and scheduled pipelines).
What it does not: remote/project/template/component includes (listed in `external`),
`only/except`, `include:rules`.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RESERVED = {
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "spec",
}
DEFAULT_STAGES = ["build", "test", "deploy"]


class CIError(Exception):
    """The configuration cannot be read as GitLab would read it."""


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class Reference:
    """A `!reference [job, key, ...]` tag, resolved after every file is merged."""

    path: tuple[str, ...]


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!reference", lambda loader, node: Reference(tuple(loader.construct_sequence(node))))


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader))  # noqa: S506
    except yaml.YAMLError as error:
        raise CIError(f"{path}: not valid YAML: {error}") from error
    if len(documents) == 2 and isinstance(documents[0], dict) and set(documents[0]) == {"spec"}:
        documents = documents[1:]  # a `spec:` header (inputs), then the configuration
    if len(documents) > 1:
        raise CIError(f"{path}: more than one YAML document")
    data = documents[0] if documents else None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CIError(f"{path}: a CI file must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: Any, override: Any) -> Any:
    """GitLab's merge: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def _include_entries(include: Any) -> list[Any]:
    if include is None:
        return []
    return include if isinstance(include, list) else [include]


def _load_with_includes(
    project: Path, path: Path, external: list[str], seen: list[Path], depth: int = 0
) -> dict[str, Any]:
    if depth > 100:
        raise CIError(f"{path}: includes nest deeper than GitLab allows")
    data = _load_yaml(path)
    merged: dict[str, Any] = {}
    for entry in _include_entries(data.pop("include", None)):
        if isinstance(entry, str):
            local = entry if not re.match(r"^https?://", entry) else None
            if local is None:
                external.append(entry)
                continue
        elif isinstance(entry, dict) and "local" in entry:
            local = entry["local"]
        else:
            external.append(yaml.safe_dump(entry, default_flow_style=True).strip())
            continue
        pattern = str(local).lstrip("/")
        matches = sorted(project.glob(pattern)) if any(ch in pattern for ch in "*?[") else [project / pattern]
        if not matches or not all(match.is_file() for match in matches):
            raise CIError(f"{path.relative_to(project)}: include 'local: {local}' matches no file")
        for match in matches:
            if match.resolve() in seen:
                raise CIError(f"{match.relative_to(project)} is included twice (GitLab rejects that)")
            seen.append(match.resolve())
            merged = deep_merge(merged, _load_with_includes(project, match, external, seen, depth + 1))
    return deep_merge(merged, data)


def _lookup(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = config
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise CIError(f"!reference {list(path)} does not resolve")
        node = node[key]
    return node


def _resolve_references(config: dict[str, Any], node: Any, depth: int = 0) -> Any:
    if depth > 10:
        raise CIError("!reference tags nest more than 10 levels")
    if isinstance(node, Reference):
        return _resolve_references(config, _lookup(config, node.path), depth + 1)
    if isinstance(node, dict):
        return {key: _resolve_references(config, value, depth) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve_references(config, item, depth) for item in node]
    return node


def _flatten(items: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in items:
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


def _resolve_extends(config: dict[str, Any], name: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    if name in chain:
        raise CIError(f"extends loop: {' -> '.join((*chain, name))}")
    if len(chain) > 10:
        raise CIError(f"{chain[0]}: extends nests deeper than GitLab's 11 levels")
    job = config.get(name)
    if not isinstance(job, dict):
        where = f" (from {chain[-1]})" if chain else ""
        raise CIError(f"extends: '{name}'{where} is not a job or hidden job")
    parents = job.get("extends", [])
    parents = [parents] if isinstance(parents, str) else list(parents)
    merged: dict[str, Any] = {}
    for parent in parents:
        merged = deep_merge(merged, _resolve_extends(config, parent, (*chain, name)))
    own = {key: value for key, value in job.items() if key != "extends"}
    return deep_merge(merged, own)


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class Need:
    job: str
    optional: bool = False


@dataclass
class Job:
    name: str
    stage: str
    config: dict[str, Any]
    needs: list[Need] | None  # None: no `needs:` (waits for earlier stages)
    matrix: list[str] = field(default_factory=list)  # instance labels of parallel:matrix

    @property
    def when(self) -> str:
        return str(self.config.get("when", "on_success"))

    @property
    def rules(self) -> list[dict[str, Any]] | None:
        rules = self.config.get("rules")
        return None if rules is None else [rule for rule in _flatten(rules) if isinstance(rule, dict)]


@dataclass
class Pipeline:
    root: Path
    stages: list[str]
    variables: dict[str, str]
    workflow_rules: list[dict[str, Any]] | None
    jobs: dict[str, Job]  # in stage order, then file order
    external: list[str]  # includes that are not local files: not read
    files: list[str]  # the files read, relative to root


def _matrix_labels(job: dict[str, Any]) -> list[str]:
    parallel = job.get("parallel")
    if not isinstance(parallel, dict) or "matrix" not in parallel:
        return []
    labels: list[str] = []
    for entry in parallel["matrix"]:
        combos: list[list[str]] = [[]]
        for value in entry.values():
            values = value if isinstance(value, list) else [value]
            combos = [[*combo, str(item)] for combo in combos for item in values]
        labels.extend(", ".join(combo) for combo in combos)
    return labels


def _needs(job_name: str, raw: Any) -> list[Need] | None:
    if raw is None:
        return None
    needs: list[Need] = []
    for item in _flatten(raw if isinstance(raw, list) else [raw]):
        if isinstance(item, str):
            needs.append(Need(item))
        elif isinstance(item, dict) and "job" in item:
            if "project" in item or "pipeline" in item:
                continue  # cross-project/pipeline artifacts: not an edge in this graph
            needs.append(Need(str(item["job"]), bool(item.get("optional", False))))
        elif isinstance(item, dict) and "pipeline" in item:
            continue
        else:
            raise CIError(f"{job_name}: cannot read needs entry {item!r}")
    return needs


def _string_variables(raw: Any) -> dict[str, str]:
    variables: dict[str, str] = {}
    for key, value in (raw or {}).items():
        if isinstance(value, dict):  # {value: ..., description: ...}
            value = value.get("value", "")
        variables[str(key)] = "" if value is None else str(value)
    return variables


def load(project: Path, ci_file: str = ".gitlab-ci.yml") -> Pipeline:
    """Read `ci_file` of `project` with its local includes, resolved as GitLab does."""
    project = Path(project)
    main = project / ci_file
    if not main.is_file():
        raise CIError(f"{main} does not exist")
    external: list[str] = []
    read = [main.resolve()]
    config = _load_with_includes(project, main, external, read)
    config = _resolve_references(config, config)

    stages = list(config.get("stages") or DEFAULT_STAGES)
    stages = [".pre", *[stage for stage in stages if stage not in (".pre", ".post")], ".post"]
    defaults = config.get("default") or {}
    workflow = config.get("workflow") or {}
    workflow_rules = workflow.get("rules")
    jobs: list[Job] = []
    for name, body in config.items():
        if name in RESERVED or name.startswith(".") or not isinstance(body, dict):
            continue
        resolved = _resolve_extends(config, name)
        for key in ("interruptible", "retry", "timeout", "tags"):
            if key in defaults and key not in resolved:
                resolved[key] = defaults[key]
        stage = str(resolved.get("stage", "test"))
        if stage not in stages:
            raise CIError(f"job '{name}': stage '{stage}' is not in stages {stages[1:-1]}")
        jobs.append(Job(name, stage, resolved, _needs(name, resolved.get("needs")), _matrix_labels(resolved)))
    order = {stage: index for index, stage in enumerate(stages)}
    jobs.sort(key=lambda job: order[job.stage])  # stable: file order within a stage
    names = {job.name for job in jobs}
    for job in jobs:
        for need in job.needs or []:
            if need.job not in names:
                raise CIError(f"job '{job.name}' needs '{need.job}', which is not a job of this pipeline")
    return Pipeline(
        root=project,
        stages=stages,
        variables=_string_variables(config.get("variables")),
        workflow_rules=None if workflow_rules is None else _flatten(workflow_rules),
        jobs={job.name: job for job in jobs},
        external=external,
        files=[str(path.relative_to(project.resolve())) for path in read],
    )


# --------------------------------------------------------------------------- rules:if
_TOKEN = re.compile(
    r"""\s*(?:
    (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<regex>/(?:[^/\\]|\\.)*/[a-z]*)
    |(?P<null>null\b)
    |(?P<op>==|!=|=~|!~|&&|\|\||\(|\))
    )""",
    re.VERBOSE,
)


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise CIError(f"cannot parse rules:if expression {expression!r} at {text[position:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _regex(literal: str) -> re.Pattern[str]:
    body, _, flags = literal[1:].rpartition("/")
    return re.compile(body, re.IGNORECASE if "i" in flags else 0)


class _Expression:
    """Recursive descent over: or := and ('||' and)*; and := cmp ('&&' cmp)*; cmp := value (op value)?"""

    def __init__(self, expression: str, variables: dict[str, str]) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.position = 0
        self.variables = variables

    def evaluate(self) -> bool:
        result = self._or()
        if self.position != len(self.tokens):
            raise CIError(f"unexpected {self.tokens[self.position][1]!r} in {self.expression!r}")
        return bool(result)

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise CIError(f"rules:if expression ends too early: {self.expression!r}")
        self.position += 1
        return token

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == ("op", "||"):
            self._take()
            right = self._and()
            left = bool(left) or bool(right)
        return left

    def _and(self) -> Any:
        left = self._comparison()
        while self._peek() == ("op", "&&"):
            self._take()
            right = self._comparison()
            left = bool(left) and bool(right)
        return left

    def _comparison(self) -> Any:
        left = self._value()
        token = self._peek()
        if token and token[0] == "op" and token[1] in ("==", "!=", "=~", "!~"):
            operator = self._take()[1]
            right = self._value()
            if operator in ("==", "!="):
                equal = left == right
                return equal if operator == "==" else not equal
            pattern = (
                right
                if isinstance(right, re.Pattern)
                else (
                    _regex(right) if isinstance(right, str) and re.fullmatch(r"/.*/[a-z]*", right) else None
                )
            )
            if pattern is None:
                raise CIError(f"right side of {operator} is not a regex in {self.expression!r}")
            found = left is not None and pattern.search(str(left)) is not None
            return found if operator == "=~" else not found
        return left not in (None, "") if not isinstance(left, bool) else left

    def _value(self) -> Any:
        kind, text = self._take()
        if kind == "op" and text == "(":
            value = self._or()
            if self._take() != ("op", ")"):
                raise CIError(f"missing ')' in {self.expression!r}")
            return value
        if kind == "var":
            return self.variables.get(text.strip("${}"))
        if kind == "str":
            return bytes(text[1:-1], "utf-8").decode("unicode_escape")
        if kind == "regex":
            return _regex(text)
        if kind == "null":
            return None
        raise CIError(f"unexpected {text!r} in {self.expression!r}")


def evaluate_if(expression: str, variables: dict[str, str]) -> bool:
    return _Expression(expression, variables).evaluate()


# --------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Source:
    """A kind of pipeline, as the predefined variables GitLab sets for it."""

    key: str
    title: str
    variables: dict[str, str]
    unset: tuple[str, ...] = ()
    short: str = ""  # a column header: words that fit a narrow column

    @property
    def column(self) -> str:
        return self.short or self.title


def sources(default_branch: str = "main", tag: str = "v1.2.3") -> list[Source]:
    # A fully configured project: optional integrations (SonarQube) are switched on, so the
    # graph shows every job a team can have.
    common = {
        "CI_DEFAULT_BRANCH": default_branch,
        "CI_SERVER_HOST": "gitlab.example.com",
        "SONAR_HOST_URL": "https://sonar.example.com",
    }
    return [
        Source(
            "merge_request",
            "Merge request",
            {
                **common,
                "CI_PIPELINE_SOURCE": "merge_request_event",
                "CI_MERGE_REQUEST_IID": "1",
                "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature/example",
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": default_branch,
                "CI_COMMIT_REF_NAME": "feature/example",
                "CI_COMMIT_REF_PROTECTED": "false",
            },
            unset=("CI_COMMIT_BRANCH", "CI_COMMIT_TAG"),
            short="merge request",
        ),
        Source(
            "default_branch",
            f"Default branch ({default_branch})",
            {
                **common,
                "CI_PIPELINE_SOURCE": "push",
                "CI_COMMIT_BRANCH": default_branch,
                "CI_COMMIT_REF_NAME": default_branch,
                "CI_COMMIT_REF_PROTECTED": "true",
            },
            unset=("CI_COMMIT_TAG", "CI_MERGE_REQUEST_IID"),
            short=default_branch,
        ),
        Source(
            "tag",
            f"Tag ({tag})",
            {
                **common,
                "CI_PIPELINE_SOURCE": "push",
                "CI_COMMIT_TAG": tag,
                "CI_COMMIT_REF_NAME": tag,
                "CI_COMMIT_REF_PROTECTED": "true",
            },
            unset=("CI_COMMIT_BRANCH", "CI_MERGE_REQUEST_IID"),
            short="tag",
        ),
        Source(
            "schedule",
            "Schedule",
            {
                **common,
                "CI_PIPELINE_SOURCE": "schedule",
                "CI_COMMIT_BRANCH": default_branch,
                "CI_COMMIT_REF_NAME": default_branch,
                "CI_COMMIT_REF_PROTECTED": "true",
            },
            unset=("CI_COMMIT_TAG", "CI_MERGE_REQUEST_IID"),
            short="schedule",
        ),
        Source(
            "schedule_template_update",
            "Schedule (SCHEDULE_TASK=template-update-check)",
            {
                **common,
                "CI_PIPELINE_SOURCE": "schedule",
                "CI_COMMIT_BRANCH": default_branch,
                "CI_COMMIT_REF_NAME": default_branch,
                "CI_COMMIT_REF_PROTECTED": "true",
                "SCHEDULE_TASK": "template-update-check",
            },
            unset=("CI_COMMIT_TAG", "CI_MERGE_REQUEST_IID"),
            short="template update check",
        ),
    ]


@dataclass
class PlannedJob:
    job: Job
    when: str
    allow_failure: bool
    needs: list[Need] | None  # only needs on jobs of this pipeline


@dataclass
class Plan:
    source: Source
    runs: bool  # False: workflow:rules create no pipeline
    jobs: list[PlannedJob]
    problems: list[str]


def _exists(project: Path, spec: Any) -> bool:
    paths = spec.get("paths", []) if isinstance(spec, dict) else spec
    files = [str(path.relative_to(project)) for path in project.rglob("*") if path.is_file()]
    return any(fnmatch.fnmatch(name, str(pattern).lstrip("/")) for pattern in paths for name in files)


def _first_match(
    rules: list[dict[str, Any]], variables: dict[str, str], project: Path
) -> dict[str, Any] | None:
    for rule in rules:
        if "if" in rule and not evaluate_if(str(rule["if"]), variables):
            continue
        if "exists" in rule and not _exists(project, rule["exists"]):
            continue
        return rule  # `changes:` is assumed to match
    return None


def plan(pipeline: Pipeline, source: Source) -> Plan:
    """Which jobs a pipeline of `source` runs, with their `when` and the needs that apply."""
    variables = {**pipeline.variables, **source.variables}
    for name in source.unset:
        variables.pop(name, None)
    if pipeline.workflow_rules is not None:
        rule = _first_match(pipeline.workflow_rules, variables, pipeline.root)
        if rule is None or rule.get("when") == "never":
            return Plan(source, False, [], [])
        variables.update(_string_variables(rule.get("variables")))

    included: list[tuple[Job, str, bool]] = []
    for job in pipeline.jobs.values():
        job_variables = {**variables, **_string_variables(job.config.get("variables"))}
        when, allow_failure = job.when, bool(job.config.get("allow_failure", job.when == "manual"))
        if job.rules is not None:
            rule = _first_match(job.rules, job_variables, pipeline.root)
            if rule is None:
                continue
            when = str(rule.get("when", job.when))
            # `when: manual` set by a rule blocks the pipeline unless allow_failure says otherwise.
            default_failure = job.when == "manual" and "when" not in rule
            allow_failure = bool(rule.get("allow_failure", job.config.get("allow_failure", default_failure)))
        if when == "never":
            continue
        included.append((job, when, allow_failure))

    present = {job.name for job, _, _ in included}
    problems: list[str] = []
    planned: list[PlannedJob] = []
    for job, when, allow_failure in included:
        needs = None
        if job.needs is not None:
            needs = []
            for need in job.needs:
                if need.job in present:
                    needs.append(need)
                elif not need.optional:
                    problems.append(
                        f"{source.title}: job '{job.name}' needs '{need.job}', which does not run in "
                        "this pipeline (GitLab refuses to create it; mark the need optional or align the rules)"
                    )
        planned.append(PlannedJob(job, when, allow_failure, needs))
    return Plan(source, True, planned, problems)


def instance_names(job: Job) -> list[str]:
    """Job names as GitLab (and gitlab-ci-local) show them: `name: [a, b]` per matrix entry."""
    return [f"{job.name}: [{label}]" for label in job.matrix] if job.matrix else [job.name]
