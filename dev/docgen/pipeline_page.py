"""Markdown for a pipeline: which jobs run per source, and a Mermaid graph of each.

Also the rollout flow of a few stages (e.g. approval, canary, post-deploy): the steps, the
checks that gate them, the pauses and what runs when a step fails.
"""

from __future__ import annotations

import math
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


# Job graphs are drawn at their natural size (the page scrolls them sideways): scaled down
# to the page's width, a pipeline of 50 jobs has unreadable labels.
NATURAL_SIZE = "---\nconfig:\n  flowchart:\n    useMaxWidth: false\n---\n"


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
        lines.append("    direction LR")
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
        # An invisible link keeps stages in order where nothing waits for the earlier one.
        lines.append(f"  {before} {'==>' if after in waits else '~~~'} {after}")
    manual = []
    for planned in job_plan.jobs:
        target = ids[planned.job.name]
        for need in planned.needs or []:
            arrow = "-.->" if need.optional else "-->"
            lines.append(f"  {ids[need.job]} {arrow} {target}")
        if planned.when == "manual":
            manual.append(target)
    lines.extend(_grid(by_stage, ids, job_plan))
    lines.append("  classDef manual stroke-dasharray: 6 4")
    if manual:
        lines.append(f"  class {','.join(manual)} manual")
    return "\n".join(lines)


def _grid(by_stage: dict[str, list[PlannedJob]], ids: dict[str, str], job_plan: Plan) -> list[str]:
    """Invisible links that lay a stage's unrelated jobs out in rows of a few.

    Left alone, Mermaid stacks them in one column: a stage of 14 parallel jobs would make
    the whole graph 14 boxes tall, every other stage floating in its middle.
    """
    linked = {need.job for p in job_plan.jobs for need in p.needs or []}
    linked |= {p.job.name for p in job_plan.jobs if p.needs}
    lines = []
    for jobs in by_stage.values():
        alone = [ids[p.job.name] for p in jobs if p.job.name not in linked]
        if len(alone) < 5:
            continue
        width = math.ceil(math.sqrt(len(alone)))
        for start in range(0, len(alone), width):
            row = alone[start : start + width]
            if len(row) > 1:
                lines.append("  " + " ~~~ ".join(row))
    return lines


def _cell(planned: PlannedJob | None) -> str:
    if planned is None:
        return ""
    note = [planned.when] if planned.when != "on_success" else []
    if planned.allow_failure:
        note.append("may fail")
    return "✓" + (f" ({', '.join(note)})" if note else "")


def jobs_table(pipeline: Pipeline, plans: list[Plan]) -> str:
    header = "| stage | job | " + " | ".join(p.source.column for p in plans) + " |"
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
    parts = [f"```mermaid\n{NATURAL_SIZE}{mermaid(pipeline, job_plan)}\n```"]
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
    tabs = []
    for job_plan in plans:
        body = textwrap.indent(_tab(pipeline, job_plan), "    ")
        tabs.append(f'=== "{job_plan.source.title}"\n\n{body}')
    out.append("\n\n".join(tabs))
    running = [p for p in plans if p.runs]
    out.append("Every job, and the pipelines it runs in:")
    out.append(jobs_table(pipeline, running))
    problems = [problem for job_plan in plans for problem in job_plan.problems]
    return "\n\n".join(out) + "\n", problems


# --------------------------------------------------------------------------- rollout flow
ROLLOUT_LEGEND = (
    "Drawn from the jobs of a default-branch pipeline. Rectangles deploy, hexagons are the "
    "checks that gate the next step, a dashed box waits for a person; an arrow's label is "
    "the pause before the job starts (`when: delayed`); red boxes run only when a job "
    "before them fails (`when: on_failure`)."
)


def _action(planned: PlannedJob) -> str:
    environment = planned.job.config.get("environment")
    return str(environment.get("action", "start")) if isinstance(environment, dict) else ""


def _rollout_node(job_id: str, planned: PlannedJob) -> str:
    name = _label(planned.job.name + (f"\n({planned.when})" if planned.when == "manual" else ""))
    if planned.when == "on_failure":
        return f'{job_id}("{name}")'
    if _action(planned) == "verify":
        return f'{job_id}{{{{"{name}"}}}}'
    return f'{job_id}["{name}"]'


def rollout(pipeline: Pipeline, job_plan: Plan, stages: list[str]) -> str:
    """A top-down Mermaid flow of the jobs of `stages` in `job_plan`.

    Jobs that run on success sit in one box per stage; jobs that run on failure sit below,
    reached from a whole stage when they need every job of it ("a step fails").
    """
    unknown = [stage for stage in stages if stage not in pipeline.stages]
    if unknown:
        raise ValueError(f"no stage {', '.join(unknown)} in the pipeline (stages: {', '.join(pipeline.stages[1:-1])})")
    chosen = [p for p in job_plan.jobs if p.job.stage in stages]
    if not chosen:
        raise ValueError(f"no job of the stages {', '.join(stages)} runs in a {job_plan.source.title} pipeline")
    ids = {p.job.name: f"r{index}" for index, p in enumerate(chosen)}
    stage_id = {stage: f"rs{pipeline.stages.index(stage)}" for stage in stages}
    on_success = {stage: [p for p in chosen if p.job.stage == stage and p.when != "on_failure"] for stage in stages}
    lines = ["flowchart TB"]
    for stage in stages:
        if not on_success[stage]:
            continue
        lines.append(f'  subgraph {stage_id[stage]}["{_label(stage)}"]')
        lines.extend(f"    {_rollout_node(ids[p.job.name], p)}" for p in on_success[stage])
        lines.append("  end")
    failure = [p for p in chosen if p.when == "on_failure"]
    lines.extend(f"  {_rollout_node(ids[p.job.name], p)}" for p in failure)

    drawn_stages = [stage for stage in stages if on_success[stage]]
    for planned in chosen:
        target = ids[planned.job.name]
        if planned.needs is None:  # waits for the earlier stages
            index = drawn_stages.index(planned.job.stage) if planned.job.stage in drawn_stages else 0
            if index > 0:
                lines.append(f"  {stage_id[drawn_stages[index - 1]]} ==> {target}")
            continue
        needs = [need.job for need in planned.needs if need.job in ids]
        if planned.when == "on_failure":
            # After another failure job that already answers those needs: only that arrow.
            chained = [p for p in failure if p.job.name in needs]
            covered = {n.job for p in chained for n in p.needs or []}
            needs = [need for need in needs if need not in covered]
            for stage in drawn_stages:
                members = {p.job.name for p in on_success[stage]}
                if len(members) > 1 and members <= set(needs):
                    lines.append(f'  {stage_id[stage]} -.->|"a step fails"| {target}')
                    needs = [need for need in needs if need not in members]
            lines.extend(f"  {ids[need]} -.-> {target}" for need in needs)
            continue
        start_in = planned.job.config.get("start_in") if planned.when == "delayed" else None
        arrow = f'-->|"{_label("wait " + str(start_in))}"|' if start_in else "-->"
        lines.extend(f"  {ids[need]} {arrow} {target}" for need in needs)
    lines.append("  classDef manual stroke-dasharray: 6 4")
    lines.append("  classDef failure stroke:#c62828,stroke-width:2px")
    manual = [ids[p.job.name] for p in chosen if p.when == "manual"]
    if manual:
        lines.append(f"  class {','.join(manual)} manual")
    if failure:
        lines.append(f"  class {','.join(ids[p.job.name] for p in failure)} failure")
    return "\n".join(lines)


def render_rollout(pipeline: Pipeline, job_plan: Plan, stages: list[str]) -> str:
    return f"{ROLLOUT_LEGEND}\n\n```mermaid\n{rollout(pipeline, job_plan, stages)}\n```\n"
