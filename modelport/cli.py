"""Command line: ``modelport ...`` (also ``flask --app modelport ...``)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from modelport.auth import accounts
from modelport.models import Role
from modelport.models.registry import RegisteredModel

if TYPE_CHECKING:
    from modelport.mlops.follow import SyncResult


@contextmanager
def _steps(steps: Sequence[str], label: str) -> Iterator[Callable[[str], None]]:
    """A progress bar over named steps (on stderr); yields what marks one step done."""
    with click.progressbar(
        length=len(steps), label=label, item_show_func=lambda step: step, file=sys.stderr
    ) as bar:
        yield lambda step: bar.update(1, step)


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


@click.command("create-admin")
@click.option("--email", required=True, help="E-mail address of the new administrator.")
@click.option("--name", required=True, help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_admin(email: str, name: str, password_stdin: bool) -> None:
    """Create an administrator account (there are no default accounts)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        # A script piping text into a hidden prompt is a mistake waiting to happen: say how.
        _fail("No terminal to ask for the password: pipe it in with --password-stdin.")
    try:
        user = accounts.create_user(email, name, password, role=Role.ADMIN)
    except (OperationalError, ProgrammingError):
        _fail("The database is not reachable or not migrated: run `modelport db upgrade`.")
    except accounts.AccountError as exc:
        _fail(exc.message)
    except accounts.FieldErrors as exc:
        _fail(" ".join(m for messages in exc.errors.values() for m in messages))
    click.echo(f"Created administrator {user.email} (id {user.id}).")


@click.command("serve")
@click.option("--bind", default=None, help="Address to listen on (default 127.0.0.1:5000).")
@click.option("--workers", default=None, type=int, help="gunicorn worker processes.")
def serve(bind: str | None, workers: int | None) -> None:
    """Serve with gunicorn using modelport/ops/gunicorn_conf.py (Linux and macOS)."""
    args = [sys.executable, "-m", "gunicorn", "--config", "python:modelport.ops.gunicorn_conf"]
    if bind:
        args += ["--bind", bind]
    if workers:
        args += ["--workers", str(workers)]
    args.append("modelport:create_app()")
    os.execv(sys.executable, args)  # noqa: S606 - replaces this process with gunicorn


@click.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the registry already holds models.")
@with_appcontext
def demo(if_empty: bool) -> None:
    """Train the demo models from scikit-learn's bundled datasets and register them."""
    import tempfile
    from pathlib import Path

    from modelport.analytics import datasets
    from modelport.serving import registry
    from modelport.serving.demo import train_demo_models

    if if_empty and not registry.is_empty():
        click.echo("The registry already holds models; demo models not loaded.")
        return
    with tempfile.TemporaryDirectory() as folder:
        trained = train_demo_models(Path(folder), progress=True)
        for item in trained:
            version = registry.register_trained(item)
            click.echo(
                f"{item.name}: version {version.number}, served by {version.runtime}"
                + (
                    f" (parity: {version.parity['reason']})"
                    if version.parity and version.parity.get("reason")
                    else ""
                )
            )
        for item in trained:
            # The rows the model learnt from, with their target, as a dataset to explore.
            frame = item.sample.assign(**{str(item.target_sample.name): item.target_sample})
            stored = datasets.register_frame(f"{item.name}-train", frame)
            click.echo(
                f"dataset {item.name}-train: version {stored.number}, {stored.row_count} rows"
            )


@click.command("register")
@click.argument("artifact")
@click.option("--name", required=True, help="Model name (created if new).")
@click.option(
    "--sample",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Training rows (CSV) for the input schema; an MLflow model's input example otherwise.",
)
@click.option("--task", type=click.Choice(["classification", "regression"]), default=None)
@click.option("--title", default="", help="Title of a new model.")
@click.option("--description", default="", help="Description of a new model.")
@click.option("--visibility", type=click.Choice(["public", "private"]), default="public")
@click.option("--alias", "aliases", multiple=True, help="Point this alias at the new version.")
@click.option("--metrics", default=None, help="Training metrics as a JSON object.")
@click.option(
    "--evaluation",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Held-out rows (CSV) with their true target: the version's report is computed on them.",
)
@click.option(
    "--target", default=None, help="The --evaluation CSV's target column (default _target)."
)
@with_appcontext
def register(
    artifact: str,
    name: str,
    sample: str | None,
    task: str | None,
    title: str,
    description: str,
    visibility: str,
    aliases: tuple[str, ...],
    metrics: str | None,
    evaluation: str | None,
    target: str | None,
) -> None:
    """Register ARTIFACT as the next version of model NAME, for pipelines.

    ARTIFACT is a skops or ONNX file, or an MLflow model: a local MLflow model folder or a
    ``models:/name@alias`` or ``models:/name/N`` URI (needs the mlflow extra;
    MODELPORT_MLFLOW_TRACKING_URI says which tracking server, MODELPORT_MLFLOW_TRUSTED=true
    that its models may be loaded). An MLflow model's signature gives the input schema and
    its input example stands in for --sample. --evaluation gives the version its report at
    /models/NAME/report.
    """
    import json
    from pathlib import Path

    from modelport.serving import registry

    if not artifact.startswith(("models:/", "runs:/")) and not Path(artifact).exists():
        _fail(
            f"{artifact} does not exist (give a skops/ONNX file, an MLflow model folder or a "
            "models:/ URI)."
        )
    try:
        parsed = json.loads(metrics) if metrics else None
    except ValueError as exc:  # also integers of over 4,300 digits
        _fail(f"--metrics is not JSON: {exc}")
    if parsed is not None and not isinstance(parsed, dict):
        _fail("--metrics must be a JSON object.")
    mlflow_model = artifact.startswith(("models:/", "runs:/")) or (
        Path(artifact).is_dir() and (Path(artifact) / "MLmodel").exists()
    )
    if not mlflow_model and sample is None:
        _fail("--sample is required for a skops or ONNX file (its training rows, CSV).")
    try:
        model = registry.get_model(name)
        if model is None:
            if task is None:
                _fail(f"{name} is a new model: give --task classification or regression.")
            # Committed together with its first version, so a refused file leaves no model.
            model = registry.create_model(
                name,
                title=title,
                description=description,
                task=task,
                visibility=visibility,
                commit=False,
            )
        if target and not evaluation:
            _fail("--target names the target column of --evaluation: give both.")
        if mlflow_model:
            version = registry.register_mlflow(
                model,
                artifact,
                sample=Path(sample) if sample else None,
                metrics=parsed,
                aliases=aliases,
                evaluation=Path(evaluation) if evaluation else None,
                evaluation_target=target,
            )
        elif Path(artifact).is_file() and sample is not None:
            version = registry.register_version(
                model,
                Path(artifact),
                filename=Path(artifact).name,
                sample=Path(sample),
                metrics=parsed,
                aliases=aliases,
                evaluation=Path(evaluation) if evaluation else None,
                evaluation_target=target,
            )
        else:
            _fail(f"{artifact} is not a file, an MLflow model folder or a models:/ URI.")
    except registry.RegistryError as exc:
        _fail(exc.message)
    click.echo(
        f"Registered {name} version {version.number} ({version.flavor}, served by "
        f"{version.runtime})"
        + (f"; sha256 {version.artifact_sha256}." if version.artifact_sha256 else ".")
        + (f" Report at /models/{name}/report?version={version.number}." if evaluation else "")
    )


@click.command("train")
@click.argument("dataset_ref", metavar="DATASET")
@click.option(
    "--recipe",
    required=True,
    help="logistic-regression, random-forest-classifier, hist-gradient-boosting-classifier, "
    "ridge, random-forest-regressor or hist-gradient-boosting-regressor.",
)
@click.option("--name", default=None, help="Model name (created if new; default: DATASET's name).")
@click.option("--target", default=None, help="The column to predict (default: the last one).")
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE", help="A recipe setting, e.g. C=0.5."
)
@click.option("--alias", "aliases", multiple=True, help="Point this alias at the new version.")
@click.option("--seed", type=int, default=0, show_default=True, help="Split and model seed.")
@click.option(
    "--no-mlflow", is_flag=True, help="Register in Modelport only, log nothing to MLflow."
)
@with_appcontext
def train(
    dataset_ref: str,
    recipe: str,
    name: str | None,
    target: str | None,
    params: tuple[str, ...],
    aliases: tuple[str, ...],
    seed: int,
    no_mlflow: bool,
) -> None:
    """Train a recipe on a registered dataset (NAME or NAME@N), log the run to MLflow and
    register the model in MLflow and in Modelport, with its report on held-out rows."""
    from modelport.mlops import training
    from modelport.serving import registry

    model_name = name or dataset_ref.partition("@")[0]
    try:
        # Checked before the bar starts: a refused request says why on a line of its own.
        plan = training.plan(
            dataset_ref, recipe=recipe, name=model_name, target=target, params=params
        )
    except training.TrainingError as exc:
        _fail(exc.message)
    if not no_mlflow and not training.mlflow_available():
        click.echo(training.MLFLOW_MISSING + "; registering in Modelport only.", err=True)
    with _steps(training.STEPS, f"Training {recipe} on {dataset_ref}") as step_done:
        try:
            result = training.train(
                plan,
                aliases=aliases,
                use_mlflow=not no_mlflow,
                seed=seed,
                progress=step_done,
            )
        except (training.TrainingError, registry.RegistryError) as exc:
            _fail(exc.message)
    for note in result.notes:
        if note != training.MLFLOW_MISSING:
            click.echo(note, err=True)
    version = result.version
    figures = ", ".join(f"{key} {value:.4g}" for key, value in result.metrics.items())
    click.echo(
        f"Trained {recipe} on {result.dataset} to predict {result.target}: {figures} "
        "(held-out rows)."
    )
    if result.run_id:
        click.echo(
            f"MLflow: run {result.run_id}, registered model {model_name} version "
            f"{result.mlflow_version}."
        )
    click.echo(
        f"Registered {model_name} version {version.number} (served by {version.runtime}"
        + (f"; parity: {version.parity['reason']}" if version.parity else "")
        + f"). Report at /models/{model_name}/report?version={version.number}."
    )


@click.group("dataset")
def dataset() -> None:
    """Datasets: CSV or Parquet files profiled once and explored at /datasets."""


@dataset.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Dataset name (a new version if it exists).")
@with_appcontext
def dataset_add(file: Path, name: str) -> None:
    """Check, profile and store FILE (CSV or Parquet) as the next version of dataset NAME."""
    from modelport.analytics import datasets

    with _steps(datasets.STEPS, f"Adding {file.name}") as step_done:
        try:
            version = datasets.add_version(name, file, filename=file.name, progress=step_done)
        except datasets.DatasetError as exc:
            _fail(exc.message)
    overview = version.profile["overview"]
    click.echo(
        f"Stored {name} version {version.number}: {version.row_count} rows, "
        f"{version.column_count} columns, {overview['missing_cells']} missing cells, "
        f"{overview['duplicate_rows']} duplicate rows; sha256 {version.file_sha256}."
    )


@dataset.command("from-records")
@click.argument("model_name", metavar="MODEL")
@click.option("--since", default=None, help="Predicted since: 2026-11-27, an ISO time, 7d or 24h.")
@click.option("--until", default=None, help="Predicted before this time (same forms).")
@click.option("--version", type=int, default=None, help="Only records of this model version.")
@click.option("--name", default=None, help="Dataset name (default MODEL-feedback).")
@click.option(
    "--target",
    default=None,
    help="Target column (default: the one the model was trained with, else target).",
)
@with_appcontext
def dataset_from_records(
    model_name: str,
    since: str | None,
    until: str | None,
    version: int | None,
    name: str | None,
    target: str | None,
) -> None:
    """Store MODEL's predicted rows that have feedback (their inputs and true answers) as the
    next version of a dataset, to train a challenger on (docs/mlops.md)."""
    from modelport.analytics import datasets, feedback_datasets, monitoring
    from modelport.serving.predictor import ModelNotFound

    try:
        start = monitoring.parse_moment(since) if since else None
        end = monitoring.parse_moment(until) if until else None
    except monitoring.WindowError as exc:
        _fail(str(exc))
    if start is not None and end is not None and start >= end:
        _fail("--since must come before --until.")
    try:
        made = feedback_datasets.from_records(
            model_name, since=start, until=end, version=version, name=name, target=target
        )
    except ModelNotFound as exc:
        _fail(str(exc))
    except datasets.DatasetError as exc:
        _fail(exc.message)
    bounds = " ".join(
        f"{word} {moment.isoformat(timespec='seconds')}"
        for word, moment in (("since", made.since), ("until", made.until))
        if moment is not None
    )
    window = f", predicted {bounds}" if bounds else ""
    numbers = ", ".join(map(str, made.versions))
    versions = f" version{'s' if len(made.versions) > 1 else ''} {numbers}" if numbers else ""
    click.echo(
        f"Stored {made.version.dataset.name} version {made.version.number}: {made.rows} rows "
        f"with feedback from {made.records} prediction records of {made.model}{versions}"
        f"{window}; target column {made.target}."
    )
    if made.left_out:
        click.echo(
            f"Left out {made.left_out} rows with feedback whose inputs were not stored "
            "(purged, erased, or past the recording limit).",
            err=True,
        )


def _canary_model(name: str) -> RegisteredModel:
    from modelport.serving import registry

    model = registry.get_model(name)
    if model is None:
        _fail(f"There is no model named {name}.")
    return model


def _canary_summary(model: RegisteredModel) -> str:
    aliases = model.alias_map()
    share = model.canary_share or 0
    shadow = model.shadow_share or 0
    return (
        f"{model.name}: champion {aliases.get('champion', '-')}, "
        f"challenger {aliases.get('challenger', '-')} for {share:.1%} of callers, "
        f"shadow {aliases.get('shadow', '-')} on {shadow:.1%} of requests."
    )


@click.command("canary")
@click.argument("model_name", metavar="MODEL")
@click.option(
    "--share", type=click.FloatRange(0, 1), default=None, help="Callers who get the challenger."
)
@click.option(
    "--shadow-share",
    type=click.FloatRange(0, 1),
    default=None,
    help="Requests also run on the shadow version after their answer.",
)
@with_appcontext
def canary(model_name: str, share: float | None, shadow_share: float | None) -> None:
    """Set MODEL's canary share (0–1 of callers naming no version get its ``challenger``
    alias's version) and/or shadow share; without options, show them."""
    from modelport.serving import registry

    model = _canary_model(model_name)
    if share is not None or shadow_share is not None:
        try:
            registry.set_shares(model, canary=share, shadow=shadow_share)
        except registry.RegistryError as exc:
            _fail(exc.message)
    click.echo(_canary_summary(model))


@click.command("promote")
@click.argument("model_name", metavar="MODEL")
@with_appcontext
def promote(model_name: str) -> None:
    """Make MODEL's challenger its champion and end the canary."""
    from modelport.serving import registry

    model = _canary_model(model_name)
    try:
        version = registry.promote(model)
    except registry.RegistryError as exc:
        _fail(exc.message)
    click.echo(f"Promoted version {version.number}. " + _canary_summary(model))


@click.command("rollback")
@click.argument("model_name", metavar="MODEL")
@with_appcontext
def rollback(model_name: str) -> None:
    """One step back for MODEL: end its canary (every caller gets the champion, challenger
    alias removed); without one, undo its last promote (the champion before it again)."""
    from modelport.serving import registry

    model = _canary_model(model_name)
    try:
        restored = registry.rollback(model)
    except registry.RegistryError as exc:
        _fail(exc.message)
    if restored is not None:
        click.echo(f"Rolled back: version {restored.number} is the champion again. ", nl=False)
    else:
        click.echo("Rolled back. ", nl=False)
    click.echo(_canary_summary(model))


def _sync_lines(result: SyncResult) -> str:
    head = f"{result.model} ← MLflow {result.mlflow_model}: "
    if result.busy:
        return head + "another sync is still running; try again."
    if result.error:
        return head + f"failed: {result.error}"
    return head + ("; ".join(result.changes) if result.changes else "up to date.")


@click.command("follow")
@click.argument("model_name", metavar="MODEL")
@click.argument("mlflow_model", metavar="MLFLOW_MODEL")
@with_appcontext
def follow_command(model_name: str, mlflow_model: str) -> None:
    """Make MODEL follow the MLflow registered model MLFLOW_MODEL: its champion, challenger
    and shadow aliases are mirrored on MODEL, now and whenever they move."""
    from modelport.mlops import follow

    model = _canary_model(model_name)
    try:
        result = follow.follow(model, mlflow_model)
    except follow.RegistryError as exc:
        _fail(exc.message)
    click.echo(_sync_lines(result))
    if result.error or result.busy:
        sys.exit(1)


@click.command("unfollow")
@click.argument("model_name", metavar="MODEL")
@with_appcontext
def unfollow(model_name: str) -> None:
    """Stop MODEL following MLflow (its versions and aliases stay)."""
    from modelport.mlops import follow

    model = _canary_model(model_name)
    try:
        follow.unfollow(model)
    except follow.RegistryError as exc:
        _fail(exc.message)
    click.echo(f"{model.name} no longer follows MLflow. " + _canary_summary(model))


@click.command("sync")
@click.argument("model_name", metavar="[MODEL]", required=False)
@with_appcontext
def sync(model_name: str | None) -> None:
    """Read the MLflow aliases of MODEL (or of every model that follows one) and move its
    own: for servers that MLflow's webhooks cannot reach."""
    from modelport.mlops import follow

    if model_name:
        try:
            results = [follow.sync(_canary_model(model_name), wait=follow.WAIT_SECONDS)]
        except follow.RegistryError as exc:
            _fail(exc.message)
    else:
        results = follow.sync_all(wait=follow.WAIT_SECONDS)
        if not results:
            click.echo("No model follows an MLflow model.")
    for result in results:
        click.echo(_sync_lines(result))
    if any(result.error or result.busy for result in results):
        sys.exit(1)


@click.command("purge")
@click.option("--days", type=int, default=None, help="Override MODELPORT_RETENTION_DAYS.")
@with_appcontext
def purge(days: int | None) -> None:
    """Erase stored prediction inputs and outputs older than the retention period."""
    from modelport.serving import records

    if days is not None and days < 1:
        _fail("--days must be at least 1.")
    count = records.purge(days)
    click.echo(f"Erased the stored inputs and outputs of {count} prediction records.")


@click.command("rollup")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many records."
)
@with_appcontext
def rollup(limit: int | None) -> None:
    """Add the prediction records written since the last run into the monitoring rollups."""
    from modelport.analytics import schedule

    summary = schedule.run(limit=limit)
    click.echo(
        f"Rolled up {summary.records} records into {summary.keys} minute and hour rows, "
        f"refreshed feedback of {summary.feedback_hours} hours, in {summary.seconds:.2f} s "
        f"(last record id {summary.last_record_id})."
    )


@click.command("wait-for-migrations")
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Give up after this long."
)
@click.option(
    "--interval", type=float, default=2.0, show_default=True, help="Seconds between tries."
)
@with_appcontext
def wait_for_migrations(timeout: float, interval: float) -> None:
    """Wait until the database's schema is at this code's newest migration, or past it (a
    later release's; see ops.health.schema_state). Kubernetes' init container runs it; the
    migration Job upgrades. Exits 1 after --timeout seconds."""
    from modelport.extensions import db
    from modelport.ops.health import database_revisions, schema_state

    deadline = time.monotonic() + timeout
    while True:
        try:
            ready, state = schema_state(database_revisions())
        except SQLAlchemyError as exc:
            # The class name only: driver messages can carry host names and user names.
            state = f"the database does not answer ({type(exc).__name__})"
        else:
            if ready:
                click.echo(
                    "The database is at this code's newest migration."
                    if state == "ok"
                    else f"The database can be served: {state}."
                )
                return
        finally:
            db.engine.dispose()  # no connection is held while waiting
        if time.monotonic() + interval > deadline:
            _fail(f"Gave up after {timeout:g} s: {state}.")
        click.echo(f"Waiting: {state}.", err=True)
        time.sleep(interval)


@click.command("drain")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Then sleep this many seconds, while load balancers take the pod out.",
)
def drain(wait: float) -> None:
    """Make /readyz answer 503 from now on by creating MODELPORT_DRAIN_FILE (Kubernetes' preStop
    step). It does not load the app, so it is quick and light beside a running server."""
    from modelport.config import ConfigError, read_settings

    try:
        path = read_settings()["DRAIN_FILE"]
    except ConfigError as exc:
        _fail(str(exc))
    if not path:
        _fail("MODELPORT_DRAIN_FILE is not set: there is no drain file to create.")
    Path(path).touch()
    click.echo(f"Draining: {path} exists, /readyz answers 503.")
    time.sleep(wait)


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(serve)
    app.cli.add_command(demo)
    app.cli.add_command(register)
    app.cli.add_command(train)
    app.cli.add_command(dataset)
    app.cli.add_command(canary)
    app.cli.add_command(promote)
    app.cli.add_command(rollback)
    app.cli.add_command(follow_command)
    app.cli.add_command(unfollow)
    app.cli.add_command(sync)
    app.cli.add_command(purge)
    app.cli.add_command(rollup)
    app.cli.add_command(wait_for_migrations)


# The app comes from Flask's factory discovery (``--app modelport`` finds ``create_app``), as
# for ``flask --app modelport``: importing the package from here would close an import circle
# (the package registers these commands).
cli = FlaskGroup(add_version_option=False, help="Modelport command line.")
cli.add_command(drain)  # on the group, not the app: found without loading the app


def main() -> None:
    """Entry point of the ``modelport`` console script."""
    os.environ["FLASK_APP"] = "modelport"  # this command serves this app, whatever else is set
    cli.main(prog_name="modelport")
