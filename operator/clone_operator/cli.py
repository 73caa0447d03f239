"""`clone-operator`: the console entry point."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from clone_operator import __version__
from clone_operator.logs import JsonFormatter
from clone_operator.settings import LogFormat, Settings


def configure_logging(fmt: LogFormat) -> None:
    if fmt is LogFormat.JSON:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=logging.INFO, handlers=[handler])
        logging.captureWarnings(True)  # Python warnings become JSON lines too
    else:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


class AdmissionRefusals(logging.Filter):
    """kopf logs a webhook's refusal as an ERROR; refusing bad input is the job: INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if (
            record.levelno == logging.ERROR
            and message.startswith("Webhook ")
            and "failed permanently" in message
        ):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_kopf() -> None:
    """kopf logs every handler call at INFO; keep its warnings and errors only."""
    for name in (
        "kopf.objects",
        "kopf.activities.startup",
        "kopf._core.reactor.running",
        "kopf.activities.probe",  # one line per liveness probe otherwise
        "aiohttp.access",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").addFilter(AdmissionRefusals())


def run(args: argparse.Namespace) -> int:
    import kopf

    import clone_operator.handlers  # registers the handlers

    settings = Settings()
    clone_operator.handlers.admission.register(settings)
    configure_logging(settings.log_format)
    quiet_kopf()
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    if args.dev:
        liveness = None
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=liveness,
        )
    )
    return 0


def api(args: argparse.Namespace) -> int:
    from clone_operator.gateway import app
    from clone_operator.gateway.settings import ApiSettings

    configure_logging(Settings().log_format)
    app.serve(ApiSettings())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="clone-operator",
        description="Kubernetes operator that clones stateful clusters (CloningOperation) "
        "and single objects (CloneObject). Settings come from CLONE_OPERATOR_* variables.",
    )
    parser.add_argument("--version", action="version", version=f"clone-operator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser(
        "run", help="run the operator against the current kubeconfig or in-cluster"
    )
    run_parser.add_argument(
        "--dev", action="store_true", help="local development: no liveness endpoint"
    )
    run_parser.set_defaults(func=run)
    api_parser = sub.add_parser(
        "api",
        help="serve the seeds' HTTP APIs over the custom resources "
        "(port CLONE_OPERATOR_API_PORT, default 8000)",
    )
    api_parser.set_defaults(func=api)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
