"""MkDocs hooks: parts of the docs generated at build time, so they cannot drift.

A page asks for generated content with a marker on a line of its own:

    <!-- playbook:questions -->            every question of copier.yml
    <!-- playbook:pipeline-graph -->       job graph per pipeline source of a generated project
    <!-- playbook:pipeline-graph repo -->  the same for this repository's own .gitlab-ci.yml
    <!-- playbook:tree -->                 file tree of a generated project
    <!-- playbook:file PATH -->            a generated file, as a code block
    <!-- playbook:files GLOB -->           every generated file matching GLOB, each under a heading
    <!-- playbook:include PATH -->         a generated Markdown file, embedded in the page
    <!-- playbook:after-copy -->           the message `copier copy` prints
    <!-- playbook:changelog -->            this repository's CHANGELOG.md
    <!-- playbook:test-modules -->         the template's test modules and what each proves
    <!-- playbook:capabilities -->         the service types' capabilities and the files each switches

    <!-- playbook:rollout-graph STAGE... --> the jobs of those stages of a default-branch
                                           pipeline (e.g. the canary steps and their gates)

The project is rendered once per build, from the working tree, with every default
(`copier copy --defaults`, no --trust). An unknown marker, a missing file or a pipeline
problem fails the build.

The site needs no other host: Mermaid (which Material would fetch from a CDN) is copied
from node_modules (`npm ci`, package-lock.json) into the site, and the theme uses system
fonts. A build without node_modules/mermaid fails.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parents[1]


def _register_dev_package() -> None:
    """MkDocs loads this file by its path (mkdocs.yml `hooks:`), not as `dev.mkdocs_hooks`:
    register its package `dev` by location so the generators import as `dev.x`, as in the
    tests and scripts (nothing is added to sys.path)."""
    if "dev" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "dev", ROOT / "dev" / "__init__.py", submodule_search_locations=[str(ROOT / "dev")]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["dev"] = package
    spec.loader.exec_module(package)


_register_dev_package()

from dev.docgen import capabilities, gitlab_ci, pipeline_page, questions  # noqa: E402
from dev.docgen import project as generated  # noqa: E402

log = logging.getLogger("mkdocs.hooks.playbook")
TABLE = re.compile(r"<table>.*?</table>", re.DOTALL)
# A word with a character a browser may break a line after ('-', '/', '=', ...), outside tags.
BREAKABLE_WORD = re.compile(r"[^\s<>]*[^\w\s<>&;][^\s<>]*")
MARKER = re.compile(r"^<!-- playbook:([a-z-]+)(?: +(.*?))? *-->[ \t]*$", re.MULTILINE)
PROJECT_NAME = "my-service"
# Mermaid, served from the site: pages with a diagram load it before Material's bundle,
# which then uses it instead of fetching https://unpkg.com/mermaid@11.
MERMAID_URI = "assets/javascripts/mermaid.min.js"
BUNDLE_SCRIPT = re.compile(r'<script src="[^"]*assets/javascripts/bundle\.[0-9a-f]+\.min\.js"></script>')

_state: dict[str, Any] = {}


def _project() -> generated.GeneratedProject:
    if "project" not in _state:
        workdir = tempfile.TemporaryDirectory(prefix="playbook-docs-")
        _state["workdir"] = workdir
        log.info("Rendering the template with its defaults for the docs")
        project = generated.generate(ROOT, Path(workdir.name) / PROJECT_NAME)
        _show_published_source(project.path / ".copier-answers.yml")
        _state["project"] = project
    return _state["project"]


def _show_published_source(answers_file: Path) -> None:
    """Record the template's published URL, not the build directory, as users' projects do.

    The URL is the one the Backstage template gives Copier (backstage/template.yaml).
    """
    template = yaml.safe_load((ROOT / "backstage" / "template.yaml").read_text(encoding="utf-8"))
    steps = [step for step in template["spec"]["steps"] if step.get("action") == "fetch:copier"]
    if not steps:
        raise ValueError("backstage/template.yaml has no fetch:copier step to take the template URL from")
    url = steps[0]["input"]["url"]
    text = answers_file.read_text(encoding="utf-8")
    answers_file.write_text(re.sub(r"^_src_path: .*$", f"_src_path: {url}", text, flags=re.MULTILINE))


def _cleanup() -> None:
    workdir = _state.pop("workdir", None)
    _state.pop("project", None)
    if workdir is not None:
        workdir.cleanup()


def mermaid_dist(root: Path = ROOT) -> Path:
    """node_modules' Mermaid bundle, checked against the version package-lock.json pins."""
    package = root / "node_modules" / "mermaid"
    bundle = package / "dist" / "mermaid.min.js"
    if not bundle.is_file():
        raise PluginError(
            f"{bundle.relative_to(root)} is missing: the site serves its own Mermaid (no CDN). "
            "Install it with `npm ci` (or `make deps`)."
        )
    locked = json.loads((root / "package-lock.json").read_text(encoding="utf-8"))
    wanted = locked["packages"]["node_modules/mermaid"]["version"]
    installed = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    if installed != wanted:
        raise PluginError(
            f"node_modules has Mermaid {installed}, package-lock.json pins {wanted}: run `npm ci`"
        )
    return bundle


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, MERMAID_URI, abs_src_path=str(mermaid_dist())))
    return files


def on_post_page(output: str, page: Any, config: Any) -> str:
    """Pages with a diagram load the site's Mermaid (3.5 MB, so only those pages)."""
    if '<pre class="mermaid">' not in output:
        return output
    if not BUNDLE_SCRIPT.search(output):
        raise PluginError(f"{page.file.src_uri}: no Material bundle script to load Mermaid before")
    src = get_relative_url(MERMAID_URI, page.url)
    return BUNDLE_SCRIPT.sub(lambda m: f'<script src="{src}"></script>\n      {m.group(0)}', output, count=1)


def on_pre_build(config: Any) -> None:
    _cleanup()  # `mkdocs serve` rebuilds: render the current template again


def on_post_build(config: Any) -> None:
    _cleanup()


def on_build_error(error: Exception) -> None:
    _cleanup()


def _pipeline_graph(argument: str) -> str:
    if argument == "repo":
        root, tag = ROOT, "1.2.0"
    elif argument == "":
        root, tag = _project().path, "v1.2.3"
    else:
        raise ValueError(f"pipeline-graph takes nothing or 'repo', not {argument!r}")
    pipeline = gitlab_ci.load(root)
    markdown, problems = pipeline_page.render(pipeline, gitlab_ci.sources(tag=tag))
    for problem in problems:
        log.warning("pipeline of %s: %s", "this repository" if argument else "a generated project", problem)
    return markdown


def _rollout_graph(argument: str) -> str:
    stages = argument.split()
    if not stages:
        raise ValueError("rollout-graph needs the stages to draw, e.g. 'approval canary post-deploy'")
    pipeline = gitlab_ci.load(_project().path)
    default_branch = next(source for source in gitlab_ci.sources() if source.key == "default_branch")
    return pipeline_page.render_rollout(pipeline, gitlab_ci.plan(pipeline, default_branch), stages)


def _changelog() -> str:
    path = ROOT / "CHANGELOG.md"
    if not path.is_file():
        raise FileNotFoundError("CHANGELOG.md is missing at the repository root")
    return generated.embed_markdown(path.read_text(encoding="utf-8"), shift=0)


def _expand(name: str, argument: str) -> str:
    if name == "questions":
        return questions.render(ROOT / "copier.yml", ROOT / "template", _project().answers)
    if name == "pipeline-graph":
        return _pipeline_graph(argument)
    if name == "rollout-graph":
        return _rollout_graph(argument)
    if name == "tree":
        return generated.tree(_project().path)
    if name == "file":
        return generated.file_block(_project().path, argument)
    if name == "files":
        project = _project().path
        matches = sorted(str(path.relative_to(project)) for path in project.glob(argument) if path.is_file())
        if not matches:
            raise FileNotFoundError(f"no generated file matches {argument!r}")
        return "\n\n".join(f"### `{match}`\n\n{generated.file_block(project, match)}" for match in matches)
    if name == "include":
        path = _project().path / argument
        if not path.is_file():
            raise FileNotFoundError(f"the generated project has no file {argument!r}")
        return generated.embed_markdown(path.read_text(encoding="utf-8"))
    if name == "after-copy":
        return generated.fence(_project().after_copy)
    if name == "changelog":
        return _changelog()
    if name == "test-modules":
        return generated.test_modules(ROOT / "tests")
    if name == "capabilities":
        return capabilities.markdown(ROOT)
    raise ValueError(f"unknown marker 'playbook:{name}'")


def keep_table_words_whole(html: str) -> str:
    """Tables wrap between words only: `post-deploy` or a path never ends a line half-way.

    Browsers break lines after hyphens and slashes, so such words are wrapped in a
    `<span class="pb-word">` (white-space: nowrap, docs/stylesheets/playbook.css); code in
    tables is kept whole by the stylesheet alone.
    """

    def table(match: re.Match[str]) -> str:
        parts = re.split(r"(<[^>]*>)", match.group(0))
        in_code = 0
        for index, part in enumerate(parts):
            if part.startswith("<"):
                if re.match(r"<code\b", part):
                    in_code += 1
                elif part == "</code>":
                    in_code -= 1
            elif part and not in_code:
                parts[index] = BREAKABLE_WORD.sub(r'<span class="pb-word">\g<0></span>', part)
        return "".join(parts)

    return TABLE.sub(table, html)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return keep_table_words_whole(html)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        name, argument = match.group(1), (match.group(2) or "").strip()
        try:
            return _expand(name, argument)
        except (ValueError, FileNotFoundError, gitlab_ci.CIError) as error:
            raise PluginError(f"{page.file.src_uri}: <!-- playbook:{name} {argument} -->: {error}") from error

    return MARKER.sub(replace, markdown)
