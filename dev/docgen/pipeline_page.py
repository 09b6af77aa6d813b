"""Markdown for a pipeline: which jobs run per source, and a Mermaid graph of each."""

from __future__ import annotations

import textwrap

from .gitlab_ci import Pipeline, Plan, PlannedJob, Source, plan

LEGEND = (
    "How to read the graphs: boxes are stages, in the order of `stages:`. A thick arrow into "
    "a stage means its jobs without `needs:` start when every job of the earlier stages has "
    "passed; thin arrows are `needs:` (the job starts as soon as those jobs are done, whatever "
    "their stage); dotted arrows are optional needs; a job marked `needs: []` starts at once; "
    "dashed boxes are manual jobs. `rules:changes` is assumed to match."
)


def _label(text: str) -> str:
    """A Mermaid node label: quoted, with the characters Mermaid would parse escaped."""
    escaped = text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return escaped.replace("\n", "<br/>")


def _job_note(planned: PlannedJob) -> str:
    notes = []
    if planned.when != "on_success":
        notes.append(planned.when)
    if planned.allow_failure:
        notes.append("may fail")
    if planned.job.matrix:
        notes.append(f"matrix × {len(planned.job.matrix)}")
    if planned.needs == []:
        notes.append("needs: []")
    return ", ".join(notes)


def mermaid(pipeline: Pipeline, job_plan: Plan) -> str:
    lines = ["flowchart LR"]
    by_stage: dict[str, list[PlannedJob]] = {}
    for planned in job_plan.jobs:
        by_stage.setdefault(planned.job.stage, []).append(planned)
    ids: dict[str, str] = {}
    stage_ids: list[str] = []
    for stage_index, stage in enumerate(pipeline.stages):
        if stage not in by_stage:
            continue
        stage_id = f"s{stage_index}"
        stage_ids.append(stage_id)
        lines.append(f'  subgraph {stage_id}["{_label(stage)}"]')
        lines.append("    direction TB")
        for planned in by_stage[stage]:
            job_id = f"j{len(ids)}"
            ids[planned.job.name] = job_id
            note = _job_note(planned)
            label = planned.job.name + (f"\n({note})" if note else "")
            lines.append(f'    {job_id}["{_label(label)}"]')
        lines.append("  end")
    # A stage waits for the earlier ones only through its jobs without `needs:`.
    waits = {
        f"s{pipeline.stages.index(stage)}"
        for stage, jobs in by_stage.items()
        if any(p.needs is None for p in jobs)
    }
    for before, after in zip(stage_ids, stage_ids[1:], strict=False):
        if after in waits:
            lines.append(f"  {before} ==> {after}")
    manual = []
    for planned in job_plan.jobs:
        target = ids[planned.job.name]
        for need in planned.needs or []:
            arrow = "-.->" if need.optional else "-->"
            lines.append(f"  {ids[need.job]} {arrow} {target}")
        if planned.when == "manual":
            manual.append(target)
    lines.append("  classDef manual stroke-dasharray: 6 4")
    if manual:
        lines.append(f"  class {','.join(manual)} manual")
    return "\n".join(lines)


def _cell(planned: PlannedJob | None) -> str:
    if planned is None:
        return ""
    note = [planned.when] if planned.when != "on_success" else []
    if planned.allow_failure:
        note.append("may fail")
    return "✓" + (f" ({', '.join(note)})" if note else "")


def jobs_table(pipeline: Pipeline, plans: list[Plan]) -> str:
    header = "| stage | job | " + " | ".join(p.source.title for p in plans) + " |"
    rule = "|---|---|" + "---|" * len(plans)
    rows = [header, rule]
    lookup = [{planned.job.name: planned for planned in p.jobs} for p in plans]
    for job in pipeline.jobs.values():
        cells = [_cell(found.get(job.name)) for found in lookup]
        if not any(cells):
            cells = ["never"] * len(plans)
        name = f"`{job.name}`" + (f" × {len(job.matrix)}" if job.matrix else "")
        rows.append(f"| {job.stage} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _needs_text(planned: PlannedJob) -> str:
    if planned.needs is None:
        return "earlier stages"
    if not planned.needs:
        return "nothing (starts at once)"
    return ", ".join(f"`{n.job}`" + (" (optional)" if n.optional else "") for n in planned.needs)


def _tab(pipeline: Pipeline, job_plan: Plan) -> str:
    if not job_plan.runs:
        return "`workflow:rules` create no pipeline for this source."
    if not job_plan.jobs:
        return "The pipeline has no job for this source."
    parts = [f"```mermaid\n{mermaid(pipeline, job_plan)}\n```"]
    rows = ["| stage | job | when | starts after |", "|---|---|---|---|"]
    for planned in job_plan.jobs:
        when = planned.when + (", may fail" if planned.allow_failure else "")
        matrix = f" — matrix: {'; '.join(planned.job.matrix)}" if planned.job.matrix else ""
        rows.append(
            f"| {planned.job.stage} | `{planned.job.name}`{matrix} | {when} | {_needs_text(planned)} |"
        )
    parts.append("\n".join(rows))
    if job_plan.problems:
        parts.append('!!! failure "Problems"\n' + "\n".join(f"    - {p}" for p in job_plan.problems))
    return "\n\n".join(parts)


def render(pipeline: Pipeline, pipeline_sources: list[Source]) -> tuple[str, list[str]]:
    """The Markdown of the job graph section, and the problems found (e.g. a need that cannot run)."""
    plans = [plan(pipeline, source) for source in pipeline_sources]
    out = [
        "Generated at build time from " + ", ".join(f"`{name}`" for name in pipeline.files) + ".",
        LEGEND,
    ]
    if pipeline.external:
        out.append(
            "Not drawn (external includes): " + ", ".join(f"`{entry}`" for entry in pipeline.external) + "."
        )
    out.append(jobs_table(pipeline, [p for p in plans if p.runs]))
    tabs = []
    for job_plan in plans:
        body = textwrap.indent(_tab(pipeline, job_plan), "    ")
        tabs.append(f'=== "{job_plan.source.title}"\n\n{body}')
    out.append("\n\n".join(tabs))
    problems = [problem for job_plan in plans for problem in job_plan.problems]
    return "\n\n".join(out) + "\n", problems
