"""The database failure path never loses data, run as the pipeline runs it.

Against a real PostgreSQL and a generated microservice with a database: the jobs of
.gitlab/ci/database.yml run their own script lines, in order, from the project root (as a
GitLab runner does), while a reader stands in for the running release: it reads and
writes `items` (the table the release uses) throughout and records every error. Before
and after every job the rows and the schema are counted:

- a transactional migration that fails: PostgreSQL rolls it back, the repair finds
  nothing to do, no table of the running release disappears (the old `downgrade -1` job
  dropped `items` here), every row written meanwhile is kept;
- a non-transactional migration (autocommit_block, CREATE INDEX CONCURRENTLY) that
  half-applied after a transactional revision committed: the repair runs its own
  downgrade, then downgrades to exactly the recorded revision;
- a half-applied migration whose downgrade cannot undo it: the repair fails and says a
  maintainer decides; the manual restore brings the schema back and loses exactly the
  rows written since the backup (which is why it never runs by itself);
- restore while a running query holds a lock: bounded wait, clear error naming the
  session, exit 6, database unchanged;
- backups and the migration record are private (0600 in a 0700 directory), and the
  artifact is for maintainers only.
"""

from __future__ import annotations

import contextlib
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from .conftest import Render
from .support.postgres import Postgres
from .support.procs import run
from .support.project import GIT_ENV, project_env

Bootstrapped = Callable[..., Path]
DATABASE_YML = Path(".gitlab") / "ci" / "database.yml"
# The columns of `items` the running release reads and writes (models.py of 0001).
RELEASE_COLUMNS = ["created_at", "description", "id", "name"]
ROW = "SELECT id, name, description, created_at FROM items"


# ----------------------------------------------------------------- the running release


@dataclass
class RunningRelease:
    """Reads and writes `items` as the service does, every few milliseconds, recording errors."""

    url: str
    errors: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # names: a restore resets the id sequence
    queries: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        connection: psycopg.Connection[Any] | None = None
        counter = 0
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = psycopg.connect(self.url, autocommit=True)
                connection.execute(f"{ROW} ORDER BY id DESC LIMIT 5").fetchall()
                counter += 1
                name = f"live {time.time_ns()} {counter}"
                connection.execute(
                    "INSERT INTO items (name, description) VALUES (%s, 'written by the running release')",
                    (name,),
                )
                self.written.append(name)
                self.queries += 2
            except psycopg.Error as exc:
                self.errors.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}".strip())
                if connection is not None:
                    connection.close()
                connection = None
            self._stop.wait(0.02)
        if connection is not None:
            connection.close()

    def __enter__(self) -> RunningRelease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def wait_for_traffic(self, queries: int = 20) -> None:
        deadline = time.monotonic() + 30
        start = self.queries
        while self.queries < start + queries:
            assert time.monotonic() < deadline, f"the reader is stuck: {self.errors}"
            time.sleep(0.05)


# ----------------------------------------------------------------- the pipeline's jobs


@dataclass
class Pipeline:
    """The database jobs of the generated pipeline, run by their own script lines."""

    project: Path
    postgres: Postgres
    database: str
    release: RunningRelease | None = None
    ledger: list[str] = field(default_factory=list)

    @property
    def jobs(self) -> dict[str, Any]:
        return yaml.safe_load((self.project / DATABASE_YML).read_text())

    @property
    def backup_dir(self) -> Path:
        variables = self.jobs[".db"]["variables"]
        return Path(variables["BACKUP_DIR"].replace("$CI_PROJECT_DIR", str(self.project)))

    def psql(self, sql: str) -> str:
        return self.postgres.psql(sql, self.database)

    def schema(self) -> list[str]:
        """Every table, column and index of the database (counted independently of the scripts)."""
        return self.psql(
            "SELECT 'table ' || table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "UNION ALL SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "ORDER BY 1"
        ).splitlines()

    def ids(self) -> set[int]:
        return {int(i) for i in self.psql("SELECT id FROM items").split()}

    def names(self) -> set[str]:
        return set(self.psql("SELECT name FROM items").splitlines())

    def revision(self) -> str:
        return self.psql("SELECT string_agg(version_num, ',') FROM alembic_version")

    def run(self, job: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """One job's script lines, stopping at the first that fails, as GitLab does; checks
        before and after it that no row and no table or column of the release went away."""
        return self.run_lines(job, self.jobs[job]["script"], env)

    def run_lines(
        self, job: str, lines: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        rows_before, schema_before = self.ids(), self.schema()
        environment = {
            # The runner's variables: the job's, and DATABASE_URL from Vault (`secrets:`).
            "CI_PROJECT_DIR": str(self.project), "BACKUP_DIR": str(self.backup_dir),
            "DATABASE_URL": self.postgres.url(self.database),
            "STAGING_DATABASE_URL": "", "PRODUCTION_DATABASE_URL": "", "PYTHON": "", "DRY_RUN": "",
            **GIT_ENV, **(env or {}),
        }
        output, status = "", 0
        for line in lines:
            result = run(["bash", "-c", line], cwd=self.project, env=environment, check=False)
            output += f"$ {line}\n{result.stdout}"
            status = result.returncode
            if status != 0:
                break
        rows_after, schema_after = self.ids(), self.schema()
        self.ledger.append(
            f"{job}: exit {status}; rows {len(rows_before)} -> {len(rows_after)}; "
            f"schema objects {len(schema_before)} -> {len(schema_after)}; revision {self.revision()}"
        )
        if not job.startswith("db-restore"):
            assert rows_before <= rows_after, f"{job} lost rows {sorted(rows_before - rows_after)[:10]}"
        columns = [line.split()[1].split(".", 1)[1] for line in schema_after
                   if line.startswith("column items.")]
        assert set(RELEASE_COLUMNS) <= set(columns), f"{job} took away a column of items:\n{output}"
        return subprocess.CompletedProcess(line, status, output)


@pytest.fixture
def pipeline(bootstrapped: Bootstrapped, postgres: Postgres, tmp_path: Path,
             request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    """A copy of the generated project (its migrations get the test's revisions) at 0001,
    with rows written by the release."""
    source = bootstrapped(service_type="microservice", use_database=True)
    project = tmp_path / "project"
    shutil.copytree(source, project, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__"))
    (project / ".venv").symlink_to(source / ".venv")
    database = f"failure_path_{request.node.name[:40].lower()}"
    postgres.create_database(database)
    pipe = Pipeline(project, postgres, database)
    run([str(project / ".venv" / "bin" / "alembic"), "upgrade", "head"], cwd=project,
        env={"DATABASE_URL": postgres.url(database)})
    pipe.psql("INSERT INTO items (name, description) SELECT 'item ' || n, 'before the pipeline' "
              "FROM generate_series(1, 50) n")
    yield pipe


def add_revision(pipe: Pipeline, name: str, source: str) -> None:
    (pipe.project / "migrations" / "versions" / name).write_text(source)


def explain(pipe: Pipeline, result: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(pipe.ledger) + f"\n--- exit {result.returncode}:\n{result.stdout[-8000:]}"


TRANSACTIONAL_FAILURE = '''"""Expand: a new table and a new column, then a data step that fails."""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table("tags", sa.Column("id", sa.Integer(), primary_key=True))
    op.add_column("items", sa.Column("tag_id", sa.Integer(), nullable=True))
    op.execute("UPDATE items SET tag_id = 1 / (id - id)")


def downgrade() -> None:
    op.drop_column("items", "tag_id")
    op.drop_table("tags")
'''

EXPAND_TAGS = '''"""Expand: a new table, in a transaction."""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table("tags", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("tags")
'''

HALF_APPLIED = '''"""Expand: a column and its index built without blocking writes, then a failure."""
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE items ADD COLUMN IF NOT EXISTS rank integer")
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_items_rank ON items (rank)")
        op.execute("SELECT 1 / 0")


def downgrade() -> None:
    # Undoes a partial upgrade too: the repair runs it after a failure.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_items_rank")
        op.execute("ALTER TABLE items DROP COLUMN IF EXISTS rank")
'''

IRREVERSIBLE = '''"""A non-transactional step that fails, and no way back."""
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE items ADD COLUMN rank integer")
        op.execute("SELECT 1 / 0")


def downgrade() -> None:
    raise NotImplementedError("irreversible")
'''


# ----------------------------------------------------------------- the job graph


def test_database_jobs_never_downgrade_blindly_and_restore_only_by_hand(render_project: Render) -> None:
    project = render_project(service_type="microservice", use_database=True)
    jobs = yaml.safe_load((project / DATABASE_YML).read_text())
    everything = (project / DATABASE_YML).read_text()
    assert "downgrade -1" not in everything.replace("`alembic downgrade -1`", "")
    for env in ("staging", "production"):
        assert jobs[f"db-migrate-{env}"]["script"] == [f"./scripts-ci/db/migrate-db.sh {env}"]
        repair = jobs[f"db-repair-{env}"]
        assert repair["when"] == "on_failure"
        assert repair["needs"] == [{"job": f"db-migrate-{env}", "artifacts": True}]
        assert repair["script"] == [f"./scripts-ci/db/repair-migration.sh {env}"]
        restore = jobs[f"db-restore-{env}"]
        assert (restore["when"], restore["allow_failure"]) == ("manual", True)
        assert "Every row written since that backup is lost" in restore["manual_confirmation"]
        assert restore["needs"] == [{"job": f"db-backup-{env}", "artifacts": True}]
        for name in (f"db-backup-{env}", f"db-migrate-{env}"):
            assert ".db-artifacts" in jobs[name]["extends"], name
    artifacts = jobs[".db-artifacts"]["artifacts"]
    assert (artifacts["access"], artifacts["when"], artifacts["paths"]) == ("maintainer", "always", ["backups/"])


# ----------------------------------------------------------------- the failure path


@pytest.mark.slow
def test_a_transactional_migration_that_fails_is_rolled_back_and_nothing_is_downgraded(
    pipeline: Pipeline,
) -> None:
    add_revision(pipeline, "0002_tags.py", TRANSACTIONAL_FAILURE)
    schema_before = pipeline.schema()
    with RunningRelease(pipeline.postgres.url(pipeline.database)) as release:
        release.wait_for_traffic()
        backup = pipeline.run("db-backup-staging")
        assert backup.returncode == 0, explain(pipeline, backup)
        migrate = pipeline.run("db-migrate-staging")
        assert migrate.returncode == 1, explain(pipeline, migrate)
        assert "division by zero" in migrate.stdout
        assert "decides from" in migrate.stdout and "Do not downgrade by hand" in migrate.stdout
        release.wait_for_traffic()
        repair = pipeline.run("db-repair-staging")
        release.wait_for_traffic()
    assert repair.returncode == 0, explain(pipeline, repair)
    assert "nothing to do: the failed migration ran in a transaction" in repair.stdout
    assert "Running downgrade" not in repair.stdout
    assert release.errors == [], "\n".join(pipeline.ledger + release.errors)
    assert pipeline.schema() == schema_before
    assert pipeline.revision() == "0001"
    # Every row: the 50 from before and all the release wrote during the failure path.
    assert set(release.written) <= pipeline.names() and len(pipeline.ids()) == 50 + len(release.written)
    assert len(release.written) > 20
    # Backups and the record are private.
    files = sorted(pipeline.backup_dir.iterdir())
    assert {p.suffix for p in files} == {".dump", ".sha256", ".json"}, files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path.name} is {oct(path.stat().st_mode)}"
    assert stat.S_IMODE(pipeline.backup_dir.stat().st_mode) == 0o700


@pytest.mark.slow
def test_a_half_applied_non_transactional_migration_is_undone_by_its_own_downgrade(
    pipeline: Pipeline,
) -> None:
    add_revision(pipeline, "0002_tags.py", EXPAND_TAGS)
    add_revision(pipeline, "0003_rank.py", HALF_APPLIED)
    schema_before = pipeline.schema()
    with RunningRelease(pipeline.postgres.url(pipeline.database)) as release:
        release.wait_for_traffic()
        assert pipeline.run("db-backup-staging").returncode == 0
        migrate = pipeline.run("db-migrate-staging")
        assert migrate.returncode == 1, explain(pipeline, migrate)
        # What the failure left: 0002 committed (the autocommit block committed it) and
        # 0003's column and index, applied outside any transaction.
        assert pipeline.revision() == "0002"
        half = set(pipeline.schema()) - set(schema_before)
        assert "table tags" in half and "column items.rank integer" in half
        assert any("ix_items_rank" in line for line in half)
        half_applied = pipeline.schema()
        dry_run = pipeline.run_lines("by hand", ["./scripts-ci/db/repair-migration.sh staging --dry-run"])
        assert dry_run.returncode == 0, explain(pipeline, dry_run)
        assert "downgrade 0003: revision 0003 has non-transactional steps" in dry_run.stdout
        assert "dry-run: nothing was changed" in dry_run.stdout
        assert pipeline.schema() == half_applied and pipeline.revision() == "0002"
        release.wait_for_traffic()
        repair = pipeline.run("db-repair-staging")
        release.wait_for_traffic()
    assert repair.returncode == 0, explain(pipeline, repair)
    out = repair.stdout
    assert "revision 0003 has non-transactional steps" in out
    assert out.index("Running downgrade 0003 -> 0002") < out.index("Running downgrade 0002 -> 0001")
    assert "downgrading to exactly the recorded revision 0001" in out
    assert "repaired: the database is back at revision 0001 with the recorded schema" in out
    assert release.errors == [], "\n".join(pipeline.ledger + release.errors)
    assert pipeline.schema() == schema_before and pipeline.revision() == "0001"
    assert set(release.written) <= pipeline.names()
    # Run again (a retried job): nothing left to do.
    again = pipeline.run("db-repair-staging")
    assert again.returncode == 0 and "nothing to do" in again.stdout, explain(pipeline, again)


@pytest.mark.slow
def test_a_repair_that_cannot_undo_the_migration_fails_and_leaves_the_restore_to_a_maintainer(
    pipeline: Pipeline,
) -> None:
    add_revision(pipeline, "0002_rank.py", IRREVERSIBLE)
    schema_before = pipeline.schema()
    with RunningRelease(pipeline.postgres.url(pipeline.database)) as release:
        release.wait_for_traffic()
        rows_before_backup = pipeline.names()
        assert pipeline.run("db-backup-staging").returncode == 0
        rows_after_backup = pipeline.names()  # the dump's snapshot lies in between
        release.wait_for_traffic()
        assert pipeline.run("db-migrate-staging").returncode == 1
        repair = pipeline.run("db-repair-staging")
        assert repair.returncode == 1, explain(pipeline, repair)
        assert "downgrade 0002 failed: NotImplementedError: irreversible" in repair.stdout
        assert "+ column public.items.rank integer" in repair.stdout
        assert "a maintainer decides" in repair.stdout and "loses every row written since" in repair.stdout
        assert pipeline.revision() == "0001"  # stamped back: the history matches the schema's base
        # The maintainer's decision: the manual restore job.
        release.wait_for_traffic()
        written_before_restore = set(release.written)
        restore = pipeline.run("db-restore-staging")
        release.wait_for_traffic()
    assert restore.returncode == 0, explain(pipeline, restore)
    assert "rows written since are lost" in restore.stdout
    assert release.errors == [], "\n".join(pipeline.ledger + release.errors)
    assert pipeline.schema() == schema_before and pipeline.revision() == "0001"
    # Exactly the cost the job's confirmation names: the rows written after the backup.
    names = pipeline.names()
    assert rows_before_backup <= names
    lost = written_before_restore - rows_after_backup
    assert len(lost) > 20 and not lost & names


@pytest.mark.slow
def test_repair_refuses_to_guess_without_the_recorded_state(pipeline: Pipeline) -> None:
    schema_before = pipeline.schema()
    repair = pipeline.run("db-repair-staging")
    assert repair.returncode == 4, explain(pipeline, repair)
    assert "no record of the state before the migration" in repair.stdout
    assert "not guessing" in repair.stdout
    assert pipeline.schema() == schema_before and pipeline.revision() == "0001"


@pytest.mark.slow
def test_restore_waits_a_bounded_time_for_a_lock_then_fails_clearly_and_changes_nothing(
    pipeline: Pipeline,
) -> None:
    assert pipeline.run("db-backup-staging").returncode == 0
    pipeline.psql("INSERT INTO items (name) VALUES ('after the backup')")
    pipeline.psql("UPDATE alembic_version SET version_num = '0002'")  # as if a migration had run
    rows, schema = pipeline.ids(), pipeline.schema()
    # A report query of the running release holds a lock on items for a long time.
    holder = psycopg.connect(pipeline.postgres.url(pipeline.database), autocommit=True)
    query = threading.Thread(
        target=lambda: _ignore_cancel(holder, "SELECT count(*), pg_sleep(120) FROM items"), daemon=True
    )
    query.start()
    try:
        deadline = time.monotonic() + 20
        while "pg_sleep" not in pipeline.psql(
            "SELECT string_agg(query, ' ') FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(120)%' "
            "AND pid <> pg_backend_pid()"
        ):
            assert time.monotonic() < deadline, "the lock holder did not start"
            time.sleep(0.1)
        started = time.monotonic()
        restore = pipeline.run("db-restore-staging", env={"PG_LOCK_WAIT_TIMEOUT": "3s"})
        elapsed = time.monotonic() - started
    finally:
        holder.cancel_safe()
        query.join(timeout=30)
        holder.close()
    assert restore.returncode == 6, explain(pipeline, restore)
    assert elapsed < 30, f"the restore waited {elapsed:.0f}s"
    out = restore.stdout
    assert "stayed locked by another session for more than 3s" in out
    assert "holding a lock: pid" in out and "pg_sleep(120)" in out and "items AccessShareLock" in out
    assert "not restored: the database is unchanged" in out
    assert "the backup is at revision 0001, the database at 0002: the restore takes the schema back" in out
    assert pipeline.ids() == rows and pipeline.schema() == schema and pipeline.revision() == "0002"


def _ignore_cancel(connection: psycopg.Connection[Any], sql: str) -> None:
    with contextlib.suppress(psycopg.errors.QueryCanceled):
        connection.execute(sql)


@pytest.mark.slow
def test_an_older_record_never_stands_for_this_migration(pipeline: Pipeline) -> None:
    """BACKUP_DIR may be durable storage: a record from an earlier pipeline must not make the
    repair downgrade revisions that earlier pipelines applied successfully."""
    stale = pipeline.backup_dir / "staging-before-migration.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"revisions": [], "schema": [], "pipeline": "41"}')
    schema = pipeline.schema()
    # This pipeline's migration cannot even record its state: it removes the old record.
    unreachable = pipeline.postgres.url("no_such_database")
    migrate = pipeline.run("db-migrate-staging", env={"DATABASE_URL": unreachable, "CI_PIPELINE_ID": "42"})
    assert migrate.returncode == 1, explain(pipeline, migrate)
    assert "could not record the state of the staging database: not migrating" in migrate.stdout
    assert not stale.exists()
    repair = pipeline.run("db-repair-staging", env={"CI_PIPELINE_ID": "42"})
    assert repair.returncode == 4 and "no record of the state before the migration" in repair.stdout
    # A record another pipeline left (e.g. restored from storage) is refused too.
    stale.write_text('{"revisions": [], "schema": [], "pipeline": "41"}')
    repair = pipeline.run("db-repair-staging", env={"CI_PIPELINE_ID": "42"})
    assert repair.returncode == 4, explain(pipeline, repair)
    assert "was recorded by pipeline 41, not by this one (42)" in repair.stdout
    assert pipeline.schema() == schema and pipeline.revision() == "0001"


@pytest.mark.slow
def test_the_migration_scripts_have_help_a_readme_section_and_pass_the_projects_linters(
    bootstrapped: Bootstrapped,
) -> None:
    project = bootstrapped(service_type="microservice", use_database=True)
    readme = (project / "scripts-ci" / "README.md").read_text()
    for name in ("db/migrate-db.sh", "db/repair-migration.sh"):
        result = run([str(project / "scripts-ci" / name), "--help"], cwd=project, check=False)
        assert result.returncode == 0 and result.stdout.startswith(f"Usage: scripts-ci/{name}"), result.stdout
        assert "Exit codes:" in result.stdout and "Example:" in result.stdout
        assert f"\n## {name}\n" in readme and f"`{name}" in readme
    assert "| 6 | busy" in readme
    module = "scripts-ci/db/migration_state.py"
    env = project_env(project)
    run(["uv", "run", "--no-sync", "mypy", "--strict", module], cwd=project, env=env)
    run(["uv", "run", "--no-sync", "ruff", "check", module], cwd=project, env=env)
    run(["uv", "run", "--no-sync", "black", "--check", module], cwd=project, env=env)
    run([str(project / ".venv" / "bin" / "shellcheck"), "--external-sources",
         *map(str, sorted(project.glob("scripts-ci/db/*.sh")))], cwd=project)
