"""`batchtts serve`: the local Waves-compatible server, in the foreground."""

from __future__ import annotations

import click

from batchtts.api.request import MODELS
from batchtts.cli.options import OneLineError, parse_rate_option
from batchtts.server.config import CONTENT_EXPIRY_VERDICTS, DEFAULT_HOST, DEFAULT_PORT, FAULT_KINDS, SSE_STYLES
from batchtts.server.engines import ENGINES
from batchtts.units import Rate


def _faults(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, float]:
    from batchtts.server.faults import parse_fault

    faults: dict[str, float] = {}
    for value in values:
        try:
            kind, probability = parse_fault(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
        faults[kind] = probability
    return faults


def _answer_delay(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, float]:
    if value is None:
        return (0.0, 0.0)
    low_text, _, high_text = value.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if high_text else low
    except ValueError:
        raise click.BadParameter(f"{value!r} is not SECONDS or LOW-HIGH (e.g. 0.05-0.3)", ctx, param) from None
    if not 0 <= low <= high:
        raise click.BadParameter(f"{value!r}: need 0 <= LOW <= HIGH", ctx, param)
    return (low, high)


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0 = any free port).",
)
@click.option(
    "--api-key",
    envvar="BATCHTTS_SERVE_API_KEY",
    metavar="KEY",
    help="Accept only 'Bearer KEY' (else any non-empty bearer token). Env: BATCHTTS_SERVE_API_KEY.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help="Speech engine: auto = espeak when installed, else synthetic tones.",
)
@click.option(
    "--rate",
    callback=parse_rate_option,
    metavar="N/s|N/min|N/h",
    help="Account rate limit on request starts (429 over it).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    metavar="N",
    help="Account limit on streams at once (429 over it).",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.1,
    show_default=True,
    metavar="SECONDS",
    help="Delay before the first audio frame.",
)
@click.option(
    "--admission-delay",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Count each request against the limits up to this long after it arrived (random, as a busy gateway).",
)
@click.option(
    "--answer-delay",
    callback=_answer_delay,
    metavar="SECONDS[-SECONDS]",
    help="Send each stream's status line and headers with its first audio, this long after the request "
    "arrived (a range: drawn per request), as an API that answers late; the limits count on arrival.",
)
@click.option(
    "--chunk-ms",
    type=click.FloatRange(min=0, min_open=True),
    default=100.0,
    show_default=True,
    metavar="MS",
    help="Milliseconds of audio per SSE chunk.",
)
@click.option(
    "--realtime-factor",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="X",
    help="Stream audio X times faster than real time (0 = unpaced).",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    callback=_faults,
    metavar="KIND:P",
    help=f"Inject a fault with probability P per request; repeatable. KIND: {', '.join(FAULT_KINDS)}.",
)
@click.option("--seed", type=int, help="Seed of the fault draws, for reproducible runs.")
@click.option(
    "--fault-first",
    type=click.IntRange(min=1),
    metavar="N",
    help="Faults strike only the first N requests of each distinct request (same text, voice, ...); "
    "later ones are clean, so a retry can be checked byte for byte.",
)
@click.option(
    "--sse-style",
    "sse_style",
    multiple=True,
    type=click.Choice(SSE_STYLES),
    help="Vary the SSE layout within the standard to test client parsers (seed: the older frames); repeatable.",
)
@click.option(
    "--content-expiry",
    type=click.Choice(CONTENT_EXPIRY_VERDICTS),
    default="applied",
    show_default=True,
    help="The x-content-expiry answer to a request that sends x-expire-content: true.",
)
@click.option(
    "--quota-requests",
    type=click.IntRange(min=0),
    metavar="N",
    help="Per key, over the server's life: answer 403 'usage limit reached' past N synthesis requests.",
)
@click.option(
    "--quota-characters",
    type=click.IntRange(min=0),
    metavar="N",
    help="Per key, over the server's life: answer 403 'usage limit reached' past N characters of text.",
)
@click.option(
    "--forbidden-key",
    "forbidden_keys",
    multiple=True,
    metavar="KEY",
    help="Answer 403 to this bearer token, as to a key of another workspace or product; repeatable.",
)
@click.option(
    "--plan-gated-model",
    "plan_gated_models",
    multiple=True,
    type=click.Choice(MODELS),
    help='Answer requests for this model with the plan-gated 400 ({"status": false, "errors": [...]}); repeatable.',
)
def serve(
    host: str,
    port: int,
    api_key: str | None,
    engine: str,
    rate: Rate | None,
    concurrency: int | None,
    latency: float,
    admission_delay: float,
    answer_delay: tuple[float, float],
    chunk_ms: float,
    realtime_factor: float,
    faults: dict[str, float],
    seed: int | None,
    fault_first: int | None,
    sse_style: tuple[str, ...],
    content_expiry: str,
    quota_requests: int | None,
    quota_characters: int | None,
    forbidden_keys: tuple[str, ...],
    plan_gated_models: tuple[str, ...],
) -> None:
    """Serve the Waves TTS API locally: same routes, no network, no credits.

    \b
    Example:
      batchtts serve --port 8765 --rate 10/s --concurrency 4 --fault 503:0.05 --seed 1
    """
    from batchtts.server.config import ServerConfig

    try:
        from batchtts.server.running import serve_forever
    except ImportError as exc:  # a broken install: starlette and uvicorn come with batchtts
        raise OneLineError(f"the local server cannot start: {exc}; reinstall batchtts (pip install batchtts)") from None
    if {"cr", "crlf"} <= set(sse_style):
        raise click.BadParameter("cr and crlf are exclusive", param_hint="'--sse-style'")
    if api_key is not None and not api_key.strip():
        raise click.BadParameter("must not be empty", param_hint="'--api-key'")
    try:
        config = ServerConfig(
            api_key=api_key,
            engine=engine,
            rate=rate,
            concurrency=concurrency,
            latency=latency,
            admission_delay=admission_delay,
            answer_delay=answer_delay,
            chunk_ms=chunk_ms,
            realtime_factor=realtime_factor,
            faults=faults,
            seed=seed,
            fault_first=fault_first,
            sse_style=frozenset(sse_style),
            content_expiry=content_expiry,
            quota_requests=quota_requests,
            quota_characters=quota_characters,
            forbidden_keys=frozenset(forbidden_keys),
            plan_gated_models=frozenset(plan_gated_models),
            host=host,
            port=port,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    from batchtts.server.engines import get_engine

    try:
        speech_engine = get_engine(engine)
    except ValueError as exc:  # --engine espeak without the speech extra
        raise OneLineError(f"--engine {engine}: {exc}") from None
    try:
        serve_forever(config, announce=click.echo, engine=speech_engine)
    except ImportError as exc:
        raise OneLineError(f"the local server cannot start: {exc}; reinstall batchtts (pip install batchtts)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
