"""The ``ganbench`` command line: the root group, and one module per command group.

Heavy imports (torch, mlflow) happen inside the commands that need them, so that
``ganbench --help`` and ``ganbench plugins`` answer quickly.
"""

from __future__ import annotations

import sys
from typing import Any

import click

import ganbench
from ganbench.errors import GanbenchError, Stopped


class _Stopped(click.ClickException):
    """A run stopped by a signal: its line is news, not an error, and the exit code is
    128 + the signal, as a shell reports a process killed by it (SLURM scripts test it)."""

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


class _Group(click.Group):
    """Turns ganbench's errors into click's one-line ``Error: ...`` and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        from ganbench.signals import StopNow
        from ganbench.tracking.store import fail_fast_http

        # Every command: one try per MLflow request, bounded in time (a user's own
        # MLFLOW_HTTP_REQUEST_* settings win). MLflow's default, 7 tries with back-off per
        # request, kept `zoo export` silent for 8 minutes against a stopped server; the
        # outbox, or the command's one-line error, decides about trying again.
        fail_fast_http()
        try:
            return super().invoke(ctx)
        except Stopped as exc:  # training's Preempted, a preparation's stop
            stopped = _Stopped(str(exc))
            stopped.exit_code = exc.exit_code
            raise stopped from None
        except StopNow as exc:
            stopped = _Stopped(f"stopped at once by a second {exc}; {exc.note}")
            stopped.exit_code = 128 + exc.signum
            raise stopped from None
        except KeyboardInterrupt:
            stopped = _Stopped("interrupted")
            stopped.exit_code = 130
            raise stopped from None
        except GanbenchError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code
            raise error from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(ganbench.__version__, prog_name="ganbench")
def cli() -> None:
    """Train, score and compare GANs; every run is tracked in MLflow."""


from ganbench.cli.analyze import analyze  # noqa: E402 (after the group they join)
from ganbench.cli.claim import claim  # noqa: E402
from ganbench.cli.data import data, datasets  # noqa: E402
from ganbench.cli.eval import eval_command  # noqa: E402
from ganbench.cli.plugins import plugins  # noqa: E402
from ganbench.cli.probe import probe  # noqa: E402
from ganbench.cli.runs import resume, runs, sync  # noqa: E402
from ganbench.cli.study import report, study  # noqa: E402
from ganbench.cli.train import run  # noqa: E402
from ganbench.cli.zoo import zoo  # noqa: E402

for command in (run, plugins, datasets, data, eval_command, probe, analyze, runs, resume, sync,
                study, report, claim, zoo):  # fmt: skip
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ganbench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
