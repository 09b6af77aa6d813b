"""The docs site builds strict, every internal link resolves, and its generated parts come from the template."""

from __future__ import annotations

import html
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from dev.docgen import gitlab_ci, questions

from .support.procs import run
from .support.project import ROOT, render

MKDOCS = [sys.executable, "-m", "mkdocs", "build", "--strict"]
BASE = "/playbook/"  # the path of the site on GitLab Pages
ENV = {"NO_MKDOCS_2_WARNING": "1", "CI_PAGES_URL": f"https://docs.example.test{BASE}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as CI builds it: `mkdocs build --strict` of the working tree."""
    out = tmp_path_factory.mktemp("site") / "public"
    result = run([*MKDOCS, "--site-dir", str(out)], cwd=ROOT, env=ENV)
    assert "WARNING" not in result.stdout, result.stdout
    return out


@pytest.fixture(scope="module")
def default_project(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with every default, as the docs render it."""
    return render(copier_template, tmp_path_factory.mktemp("default") / "my-service")


def _text(page: Path) -> str:
    """The visible text of a page (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value:
                self.links.append(value)


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text())
    return parser


def test_every_internal_link_and_anchor_resolves(site: Path) -> None:
    pages = {page: _parse(page) for page in site.rglob("*.html")}
    broken = []
    for page, parsed in pages.items():
        for link in parsed.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                continue
            path = unquote(parts.path)
            if path.startswith("/"):  # absolute: only the 404 page, under the site's base path
                assert path.startswith(BASE), f"{page.relative_to(site)}: {link} is outside {BASE}"
                target = (site / path.removeprefix(BASE)).resolve()
            else:
                target = (page.parent / path).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {link} (no {target})")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {link} (no anchor)")
    assert not broken, "\n".join(broken)
    assert len(pages) >= 10


def _loader() -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    Loader.add_constructor("!ENV", lambda loader, node: None)
    return Loader


def test_broken_links_anchors_and_pages_outside_the_nav_fail_the_build(tmp_path: Path) -> None:
    """The `validation:` settings of mkdocs.yml really make the strict build fail."""
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_loader())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[gone](missing.md) and [anchor](other.md#nowhere)\n")
    (docs / "other.md").write_text("# Other\n\n## Somewhere\n")
    (docs / "orphan.md").write_text("# Orphan\n")
    (tmp_path / "mkdocs.yml").write_text(
        yaml.safe_dump(
            {
                "site_name": "probe",
                "nav": ["index.md", "other.md"],
                "validation": config["validation"],
                "strict": config["strict"],
            }
        )
    )
    result = run([sys.executable, "-m", "mkdocs", "build"], cwd=tmp_path, env=ENV, check=False)
    assert result.returncode != 0
    assert "'missing.md'" in result.stdout
    assert "'#nowhere'" in result.stdout
    assert "orphan.md" in result.stdout


def test_questions_page_documents_every_question(site: Path) -> None:
    ids = _parse(site / "questions" / "index.html").ids
    text = _text(site / "questions" / "index.html")
    for question in questions.read(ROOT / "copier.yml"):
        assert question.name in ids, question.name
        assert question.help in text, question.name


def test_job_graph_is_drawn_from_a_generated_pipeline(site: Path, default_project: Path) -> None:
    pipeline = gitlab_ci.load(default_project)
    page = (site / "pipeline-graph" / "index.html").read_text()
    assert page.count('class="mermaid"') >= 1
    text = _text(site / "pipeline-graph" / "index.html")
    for name in pipeline.jobs:
        assert f'"{name}' in text or f"{name}<br/>" in text, f"job {name} is not in the graph"
    for source in gitlab_ci.sources():
        assert source.title in text
    repo_graph = _text(site / "maintaining" / "index.html")
    assert "test:fast" in repo_graph and "release-notes" in repo_graph


def test_example_files_are_the_generated_ones(site: Path, default_project: Path) -> None:
    project = default_project
    text = _text(site / "example-project" / "index.html")
    for name in ("Makefile", ".gitlab-ci.yml", ".pre-commit-config.yaml", "README.md"):
        for line in (project / name).read_text().splitlines():
            assert line.strip() in text, f"{name}: {line!r} is not on the example page"


def test_changelog_page_includes_the_changelog(site: Path) -> None:
    text = " ".join(_text(site / "changelog" / "index.html").split())
    body = (ROOT / "CHANGELOG.md").read_text().split("\n", 1)[1]
    for line in body.splitlines():
        # Markdown syntax is gone in HTML: headings, bullets, emphasis, code, link targets.
        line = re.sub(r"^ *([#]+|[-*]) +", "", line)
        # Outside code spans (odd pieces are inside), emphasis and link syntax disappear.
        pieces = line.split("`")
        for i in range(0, len(pieces), 2):
            pieces[i] = re.sub(r"\*|\[|\]\([^)]*\)|\]", "", pieces[i])
        stripped = " ".join("".join(pieces).split())
        if stripped:
            assert stripped in text, stripped


def test_mermaid_diagrams_parse(site: Path, tmp_path: Path) -> None:
    checker = ["node", str(ROOT / "dev" / "check-mermaid.mjs")]
    if not (ROOT / "node_modules" / "mermaid").is_dir():
        raise AssertionError("Mermaid is not installed: run `make deps` (npm ci)")
    result = run([*checker, str(site)], cwd=ROOT)
    assert result.stdout.count("ok   ") >= 5, result.stdout
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "index.html").write_text(
        '<pre class="mermaid"><code>flowchart LR\n  a["x"] --&gt;</code></pre>'
    )
    failed = run([*checker, str(broken)], cwd=ROOT, check=False)
    assert failed.returncode == 1 and "FAIL index.html#1" in failed.stdout


def test_make_targets_named_in_the_docs_exist(default_project: Path) -> None:
    generated = (default_project / "Makefile").read_text()
    own = (ROOT / "Makefile").read_text()
    for page, makefile in [
        ("getting-started.md", generated),
        ("operations.md", generated),
        ("maintaining.md", own),
        ("catalog.md", own),
    ]:
        for target in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", (ROOT / "docs" / page).read_text()):
            assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), f"{page}: make {target}"


def test_readme_keeps_its_two_setup_commands() -> None:
    """The README's promise: these two commands, exactly, come first (`.ci/run` runs the second)."""
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert first_block
    assert first_block.group(1).splitlines() == [
        'pip install uv && uvx --from copier==9.19.1 copier copy --defaults --vcs-ref HEAD "$PWD" ../my-service',
        "make test",
    ]


def test_an_unknown_marker_fails_the_build() -> None:
    from mkdocs.exceptions import PluginError

    import dev.mkdocs_hooks as hooks

    page = SimpleNamespace(file=SimpleNamespace(src_uri="probe.md"))
    with pytest.raises(PluginError, match="unknown marker 'playbook:nope'"):
        hooks.on_page_markdown("# Probe\n\n<!-- playbook:nope -->\n", page, None, None)
    with pytest.raises(PluginError, match="no file 'not/there.txt'"):
        hooks.on_page_markdown("<!-- playbook:file not/there.txt -->\n", page, None, None)
    hooks.on_post_build(None)
