"""The docs site builds strict, every internal link resolves, its generated parts come from the
template, and it reads the same in a real browser without the Internet."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from dev.docgen import gitlab_ci, questions

from .support.procs import run
from .support.project import ROOT, render

# The site build takes mermaid from node_modules; the browser checks need chromium.
pytestmark = pytest.mark.npm

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


# --------------------------------------------------------------------------- in a real browser
# Debian's Chromium, driven by Playwright (dev/browser-check.mjs), opens the built site
# served on 127.0.0.1 with every other host blocked: what a reader on an air-gapped network
# (GitLab Pages without the Internet) sees.
BROWSER_CHECK = ["node", str(ROOT / "dev" / "browser-check.mjs")]
SCREENSHOTS = ROOT / "test-artifacts" / "docs-screenshots"
KEY_PAGES = ["pipeline-graph/", "operations/", "fleet-rollout/", "maintaining/"]  # screenshots


def _browser_check(site: Path, report: Path, *args: str, env: dict[str, str] | None = None):
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        raise AssertionError("playwright-core is not installed: run `make deps` (npm ci)")
    result = run([*BROWSER_CHECK, str(site), "--report", str(report), *args], cwd=ROOT, env=env, check=False)
    if result.returncode == 2:  # the browser could not run: never a silent skip
        raise AssertionError(f"the browser check could not run:\n{result.stdout}")
    pages = {page["page"]: page for page in json.loads(report.read_text())["pages"]}
    return result, pages


def _drawn(page: dict) -> str:
    return " ".join(label for diagram in page["diagrams"] for label in diagram["labels"])


def test_every_page_reads_the_same_offline_in_chromium(
    site: Path, default_project: Path, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """No request leaves 127.0.0.1, no console error, every diagram drawn, no word broken in a table."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    record_property("screenshots", str(SCREENSHOTS))  # in report.xml; CI keeps test-artifacts/
    result, pages = _browser_check(
        site, tmp_path / "report.json", "--screenshots", str(SCREENSHOTS), "--shots", ",".join(KEY_PAGES)
    )
    print(result.stdout, f"screenshots: {SCREENSHOTS}", sep="\n")
    assert result.returncode == 0, result.stdout
    built = {"" if p.parent == site else f"{p.parent.relative_to(site).as_posix()}/" for p in site.rglob("index.html")}
    assert set(pages) == built | {"no-such-page/"}, "every page and the 404 page are opened"
    assert all(not page["problems"] for page in pages.values())

    graph = pages["pipeline-graph/"]
    assert len(graph["diagrams"]) == len(gitlab_ci.sources()) and all(d["rendered"] for d in graph["diagrams"])
    drawn = f" {_drawn(graph)} "
    for name in gitlab_ci.load(default_project).jobs:
        assert f" {name} " in drawn, f"job {name} is not drawn on the job graph"
    rollout = _drawn(pages["operations/"])
    for job in ("approve-production", "canary-5", "canary-5-health", "canary-100", "canary-rollback", "wait 10 minutes"):
        assert job in rollout, f"{job} is not drawn in the canary flow"
    assert "allowedVersions" in _drawn(pages["fleet-rollout/"])
    assert "release-notes" in _drawn(pages["maintaining/"])
    for name in KEY_PAGES:
        shot = Path(pages[name]["screenshot"])
        assert shot.parent == SCREENSHOTS and shot.stat().st_size > 10_000, shot


def test_the_browser_check_fails_a_diagram_that_stops_rendering(site: Path, tmp_path: Path) -> None:
    """Each fault a reader would see fails the check, on the page that has it."""
    broken = tmp_path / "site"
    shutil.copytree(site, broken)
    # Built without the site's own Mermaid: Material asks unpkg.com, which is unreachable.
    operations = broken / "operations" / "index.html"
    operations.write_text(re.sub(r'<script src="[^"]*mermaid\.min\.js"></script>', "", operations.read_text()))
    # A diagram with a syntax error.
    fleet = broken / "fleet-rollout" / "index.html"
    fleet.write_text(fleet.read_text().replace("release --&gt; mr1", "release --&gt;", 1))
    # A web font, a console error and a table too narrow for its words.
    home = broken / "index.html"
    home.write_text(
        home.read_text().replace(
            "</article>",
            '<img src="https://fonts.example.test/roboto.png" alt="">'
            "<script>console.error('boom')</script>"
            '<table style="table-layout: fixed; width: 60px"><tr><td>post-deploy-notify-oncall</td></tr></table>'
            '<table><tr><td><div style="width: 40px"><code>canary-rollback</code></div></td></tr></table>'
            "</article>",
            1,
        )
    )
    # A short wait for diagrams: two of them never appear.
    only = ["--only", ",operations/,fleet-rollout/", "--mermaid-timeout", "4000"]
    result, pages = _browser_check(broken, tmp_path / "report.json", *only)
    assert result.returncode == 1, result.stdout
    problems = {name: "\n".join(page["problems"]) for name, page in pages.items()}
    assert "external request: https://unpkg.com/mermaid@11/dist/mermaid.min.js" in problems["operations/"]
    assert "mermaid #1: not rendered to an SVG" in problems["operations/"]
    assert "mermaid #1: not rendered to an SVG" in problems["fleet-rollout/"]
    assert "external request: https://fonts.example.test/roboto.png" in problems[""]
    assert "console error: boom" in problems[""]
    assert "breaks the word post-deploy-notify-oncall" in problems[""]
    assert "overflows with the word canary-rollback" in problems[""]


def test_the_browser_check_fails_loudly_without_chromium(site: Path, tmp_path: Path) -> None:
    result = run(
        [*BROWSER_CHECK, str(site), "--report", str(tmp_path / "report.json")],
        cwd=ROOT,
        env={"CHROMIUM": str(tmp_path / "no-chromium")},
        check=False,
    )
    assert result.returncode == 2 and "no-chromium is missing" in result.stdout


def test_the_site_serves_its_own_mermaid_and_fonts(site: Path) -> None:
    """What the browser test proves, in the files: no CDN, no Google Fonts."""
    bundle = site / "assets" / "javascripts" / "mermaid.min.js"
    assert bundle.read_bytes() == (ROOT / "node_modules" / "mermaid" / "dist" / "mermaid.min.js").read_bytes()
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, page
        assert ('class="mermaid"' in text) == ("mermaid.min.js" in text), f"{page}: Mermaid only where drawn"


def test_a_build_without_mermaid_in_node_modules_fails(tmp_path: Path) -> None:
    from mkdocs.exceptions import PluginError

    import dev.mkdocs_hooks as hooks

    shutil.copy(ROOT / "package-lock.json", tmp_path / "package-lock.json")
    with pytest.raises(PluginError, match=r"node_modules/mermaid/dist/mermaid.min.js is missing.*npm ci"):
        hooks.mermaid_dist(tmp_path)
    package = tmp_path / "node_modules" / "mermaid"
    (package / "dist").mkdir(parents=True)
    (package / "dist" / "mermaid.min.js").write_text("/* stale */")
    (package / "package.json").write_text('{"version": "10.0.0"}')
    with pytest.raises(PluginError, match=r"Mermaid 10\.0\.0, package-lock\.json pins"):
        hooks.mermaid_dist(tmp_path)


def test_table_words_are_kept_whole_outside_code() -> None:
    import dev.mkdocs_hooks as hooks

    html = '<p>post-deploy</p><table><tr><td>post-deploy <code>a-b</code> <a href="x/y">docs/x.md</a> and</td></tr></table>'
    assert hooks.keep_table_words_whole(html) == (
        '<p>post-deploy</p><table><tr><td><span class="pb-word">post-deploy</span> <code>a-b</code> '
        '<a href="x/y"><span class="pb-word">docs/x.md</span></a> and</td></tr></table>'
    )


def test_rollout_flow_draws_steps_gates_pauses_and_failure_paths(default_project: Path) -> None:
    from dev.docgen import pipeline_page

    pipeline = gitlab_ci.load(default_project)
    main = gitlab_ci.plan(pipeline, gitlab_ci.sources()[1])
    flow = pipeline_page.rollout(pipeline, main, ["approval", "canary", "post-deploy"])
    ids = {name: node for node, name in re.findall(r'^ *(r\d+)[\[({]+"([^"<]+)', flow, re.MULTILINE)}
    assert f'{ids["canary-5"]} -->|"wait 10 minutes"| {ids["canary-5-health"]}' in flow
    assert f'{ids["canary-5-health"]} --> {ids["canary-25"]}' in flow
    assert re.search(rf'^ +{ids["canary-5-health"]}\{{\{{"canary-5-health"\}}\}}$', flow, re.MULTILINE), "a check is a hexagon"
    assert f'{ids["approve-production"]} --> {ids["canary-5"]}' in flow
    assert f'-.->|"a step fails"| {ids["canary-rollback"]}' in flow
    assert f'{ids["canary-rollback"]} -.-> {ids["canary-notify-oncall"]}' in flow
    assert f"class {ids['approve-production']} manual" in flow
    with pytest.raises(ValueError, match="no stage nope"):
        pipeline_page.rollout(pipeline, main, ["nope"])


def test_pages_with_a_diagram_load_the_sites_mermaid_before_materials_bundle() -> None:
    from mkdocs.exceptions import PluginError

    import dev.mkdocs_hooks as hooks

    page = SimpleNamespace(url="pipeline-graph/", file=SimpleNamespace(src_uri="pipeline-graph.md"))
    bundle = '<script src="../assets/javascripts/bundle.a5f9d56c.min.js"></script>'
    drawn = hooks.on_post_page(f'<pre class="mermaid"><code>x</code></pre>{bundle}', page, None)
    assert drawn.endswith(f'<script src="../assets/javascripts/mermaid.min.js"></script>\n      {bundle}')
    assert hooks.on_post_page(f"<p>no diagram</p>{bundle}", page, None) == f"<p>no diagram</p>{bundle}"
    with pytest.raises(PluginError, match="no Material bundle script"):
        hooks.on_post_page('<pre class="mermaid"><code>x</code></pre>', page, None)


def test_parallel_jobs_of_a_stage_are_drawn_in_rows_not_one_tall_column(default_project: Path) -> None:
    from dev.docgen import pipeline_page

    pipeline = gitlab_ci.load(default_project)
    merge_request = gitlab_ci.plan(pipeline, gitlab_ci.sources()[0])
    graph = pipeline_page.mermaid(pipeline, merge_request)
    names = {node: name for node, name in re.findall(r'^ *(j\d+)\["([^"<]+)', graph, re.MULTILINE)}
    rows = [line.split() for line in graph.splitlines() if re.match(r"^ *j\d+ ~~~ ", line)]
    rows = [[names[node] for node in row if node != "~~~"] for row in rows]
    parallel = [p.job.name for p in merge_request.jobs if p.job.stage == "merge-request" and p.needs == []]
    needed = {n.job for p in merge_request.jobs for n in p.needs or []}
    alone = [name for name in parallel if name not in needed]
    assert len(alone) >= 5 and sorted(sum(rows, [])) == sorted(alone)
    assert max(len(row) for row in rows) == math.ceil(math.sqrt(len(alone)))
