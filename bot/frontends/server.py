"""`modelbot serve`: the Slack app behind cheroot (http/wsgi_server.py), with /alerts, /healthz, /readyz, /metrics.

HTTP mode serves `POST /slack/events` (signed slash commands and interactivity); with SLACK_APP_TOKEN
set the Slack traffic comes over Socket Mode instead and HTTP keeps only the operational routes. The
outbox worker and an expiry sweep run beside it. SIGTERM stops accepting, lets running rollouts finish
(up to DRAIN_S), delivers what is due, and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.core.errors import ModelbotError, StoreUnavailable
from bot.frontends.http import alerts
from bot.frontends.http.health import FleetHealth, not_ready
from bot.frontends.http.metrics import Metrics, ScrapeReads
from bot.frontends.http.router import Environ, Response, Router
from bot.frontends.http.wsgi_server import HttpServer
from bot.frontends.slack.app import SlackEnv, SlackFrontend, build_app, slack_env, web_client
from bot.frontends.slack.guard import Dispatch, SlackGuard
from bot.frontends.slack.notices import Notices
from bot.frontends.slack.outbox import OutboxWorker
from bot.frontends.slack.ratelimit import RateGate
from bot.frontends.slack.workers import Workers
from bot.logging_setup import bound_context, slack_trigger
from bot.wiring import Bot

log = logging.getLogger(__name__)
ALERT_TOKEN_ENV = "MODELBOT_ALERT_TOKEN"  # noqa: S105 - the variable's name, not a secret
THREADS = 48  # idle threads are cheap; 50 simultaneous commands should not queue behind each other
QUIET_S = 0.01
DRAIN_S = 60.0
EXPIRY_EVERY_S = 15.0  # how often requests past their TTL are expired (and their cards updated)
ALERT_SWEEP_S = 5.0  # how often opted-in alerts are judged for auto_rollback (min_firing's resolution)
IN_FLIGHT_GRACE_S = 5


def serve(bot: Bot, host: str, port: int) -> int:
    """Run until SIGTERM or SIGINT; returns the exit status."""
    for name in ("slack_sdk", "slack_bolt"):  # their DEBUG lines carry request headers and bodies: tokens, payloads
        logging.getLogger(name).setLevel(max(logging.getLogger(name).getEffectiveLevel(), logging.INFO))
    try:
        server = Server(
            bot,
            slack_env(os.environ),
            host=host,
            port=port,
            alert_token=os.environ.get(ALERT_TOKEN_ENV, ""),
            pagerduty_secret=os.environ.get(alerts.PAGERDUTY_SECRET_ENV, ""),
        )
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        server.start()
        log.info("modelbot serving on %s:%d (%s)", host, server.port, server.mode)
        while not stop.wait(1.0):
            pass
        log.info("shutting down")
        server.stop()
        return 0
    finally:
        bot.close()


class Server:
    """Everything `serve` runs, startable and stoppable in-process (tests use it on 127.0.0.1:0)."""

    def __init__(
        self,
        bot: Bot,
        env: SlackEnv,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        alert_token: str = "",
        client: WebClient | None = None,
        outbox_client: WebClient | None = None,
        token_verification_enabled: bool = True,
        outbox_options: dict[str, Any] | None = None,
        threads: int = THREADS,
        expiry_every_s: float = EXPIRY_EVERY_S,
        pagerduty_secret: str = "",
        alert_sweep_s: float = ALERT_SWEEP_S,
    ) -> None:
        self.bot, self.env = bot, env
        self._host, self._port, self._threads = host, port, threads
        self._expiry_every_s = expiry_every_s
        self._alert_sweep_s = alert_sweep_s
        self._alert_token = alert_token
        self._pagerduty_secret = pagerduty_secret
        if not alert_token:
            log.warning("%s is not set: POST /alerts refuses every call", ALERT_TOKEN_ENV)
        self.health = FleetHealth(bot.fleet)  # /healthz probes the fleet; /metrics exports its newest findings
        self.metrics = Metrics(
            reads=ScrapeReads(
                outbox_pending=bot.service.outbox_pending,
                outbox_oldest_age_s=bot.service.outbox_oldest_age_s,
                drifted=bot.service.drifted,
                approvals_pending=bot.service.approvals_pending,
                retro_reviews_open=bot.service.retro_reviews_open,
                reachability=self.health.reachability,
            )
        )
        self._acking = 0  # Slack requests being answered right now; background work yields to them...
        self._quiet_from = 0.0  # ...and to a burst still arriving (monotonic time the last answer + QUIET_S)
        self._acking_lock = threading.Lock()
        self.rate_gate = RateGate()  # one per process: a 429 met by the outbox or live progress holds both
        self.notices = Notices()  # commands' response_urls, for what the outbox must tell a requester privately
        self.outbox = OutboxWorker(
            bot.service,
            outbox_client or web_client(env, retries=False, timeout=10),
            gate=self.rate_gate,
            notices=self.notices,
            **(outbox_options or {}),
        )
        self.slack: SlackFrontend = build_app(
            bot.service,
            env,
            client=client,
            metrics=self.metrics,
            wake_outbox=self.outbox.wake,
            token_verification_enabled=token_verification_enabled,
            workers=Workers(defer_while=self._answering),
            rate_gate=self.rate_gate,
            notices=self.notices,
        )
        self._stopping = threading.Event()
        self._threads_started: list[threading.Thread] = []
        self._socket_mode: SocketModeHandler | None = None
        self._http: HttpServer | None = None
        self.port = 0

    @property
    def mode(self) -> str:
        return "Socket Mode" if self.env.socket_mode else "HTTP"

    def start(self) -> None:
        try:
            self._http = HttpServer(
                self.router(),
                host=self._host,
                port=self._port,
                threads=self._threads,
                grace_s=IN_FLIGHT_GRACE_S,
            )
        except OSError as exc:
            raise ModelbotError(f"cannot listen on {self._host}:{self._port}: {exc.strerror or exc}") from None
        self.port = self._http.port
        self.outbox.start()
        self._spawn("http", self._run_http)
        self._spawn("expiry", self._sweep_expired)
        self._spawn("recovery", self._sweep_dead_rollouts)
        self._spawn("drift", self._check_drift)
        self._spawn("auto-rollback", self._sweep_alerts)
        if self.env.socket_mode:
            self._socket_mode = SocketModeHandler(
                self.slack.app, app_token=self.env.app_token, web_client=WebClient(base_url=self.env.api_url)
            )
            try:
                self._socket_mode.connect()  # type: ignore[no-untyped-call]
            except (SlackClientError, OSError) as exc:
                self.stop(drain_s=0)
                raise ModelbotError(f"Socket Mode: could not connect with SLACK_APP_TOKEN: {exc}") from None

    def stop(self, drain_s: float = DRAIN_S) -> None:
        """Graceful: stop taking requests, let running work finish, deliver what is due, stop the threads."""
        if self._socket_mode is not None:
            self._socket_mode.close()  # type: ignore[no-untyped-call]
        self._stopping.set()
        if self._http is not None:
            self._http.stop()  # stop accepting; requests in flight get IN_FLIGHT_GRACE_S to finish
        for thread in self._threads_started:
            thread.join(IN_FLIGHT_GRACE_S + 2)
        if not self.slack.drain(drain_s):
            log.warning("stopped with work still running after %.0fs", drain_s)
        self.outbox.stop()

    def router(self) -> Router:
        router = Router()
        if not self.env.socket_mode:  # the guard checks size and signature before bolt sees a byte
            guard = SlackGuard(self.slack.app, self.env.signing_secret, dispatch=self._timed(self.slack.app.dispatch))
            router.mount("POST", "/slack/events", guard)
        router.add("GET", "/healthz", self.health.healthz)  # 200 + per-replica reachability
        router.add("GET", "/readyz", self._readyz)
        router.add("GET", "/metrics", self._metrics)
        endpoints = alerts.AlertEndpoints(
            self.bot.service,
            self.metrics,
            self.outbox.wake,
            token=self._alert_token,
            pagerduty_secret=self._pagerduty_secret,
        )
        router.add("POST", "/alerts", endpoints.alertmanager)
        router.add("POST", "/pagerduty", endpoints.pagerduty)
        return router

    def _timed(self, dispatch: Dispatch) -> Dispatch:
        """Time the answer to a signed Slack request; refused ones are neither timed nor make background work wait."""

        def timed(request: Any) -> Any:
            started = time.perf_counter()
            with self._acking_lock:
                self._acking += 1
            try:
                with bound_context(**slack_trigger(getattr(request, "body", None))):
                    return dispatch(request)
            finally:
                with self._acking_lock:
                    self._acking -= 1
                    self._quiet_from = time.monotonic() + QUIET_S
                self.metrics.ack(time.perf_counter() - started)

        return timed

    def _answering(self) -> bool:
        """True while Slack requests are being answered or a burst of them is still arriving."""
        return self._acking > 0 or time.monotonic() < self._quiet_from

    def _readyz(self, _: Environ) -> Response:
        # The database only (Service.check_ready): with its schema at head the bot serves incidents even while the
        # fleet is away (/healthz reports the replicas). The schema, not a ping: an empty or half-migrated database
        # answers but fails every command.
        reason = not_ready([("database", self.bot.service.check_ready)])
        return Response.text(503, reason) if reason else Response.text(200, "ready")

    def _metrics(self, environ: Environ) -> Response:
        body, content_type = self.metrics.exposition(str(environ.get("HTTP_ACCEPT", "")))
        return Response(200, body, content_type)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=f"serve-{name}", daemon=True)
        thread.start()
        self._threads_started.append(thread)

    def _run_http(self) -> None:
        assert self._http is not None
        self._http.run()

    def _check_drift(self) -> None:
        """Every `serving.drift_check_interval_s`, compare every replica with the desired state; a drifted model
        is posted once per episode to its incident channel, with a Re-sync button."""
        every = self.bot.settings.serving.drift_check_interval_s
        while not self._stopping.wait(every):
            try:
                self.bot.service.check_drift()
                self.outbox.wake()
            except Exception:  # the database or the fleet may be away for a moment; the next check tries again
                _log_failure("drift check failed")

    def _sweep_dead_rollouts(self) -> None:
        """Rollouts of dead processes are recovered within seconds of their lease lapsing: a fleet must not stay
        split, nor a model blocked, for longer than that. Emergencies that gave up waiting for a busy fleet start
        here once it is free."""
        every = self.bot.service.heartbeat_s
        while not self._stopping.wait(every):
            try:
                recovered = self.bot.service.recover()
                if self.bot.service.resume_emergencies() or recovered:
                    self.outbox.wake()
            except Exception:  # the database or the fleet may be away for a moment; the next sweep tries again
                _log_failure("recovery sweep failed")

    def _sweep_alerts(self) -> None:
        """Opted-in alerts that fired for `min_firing` are judged (rolled back, or held with the reason posted)
        without waiting for Alertmanager to repeat itself."""
        while not self._stopping.wait(self._alert_sweep_s):
            try:
                self.bot.service.auto_rollback()
                self.outbox.wake()
            except Exception:  # the database or the fleet may be away for a moment; the next sweep tries again
                _log_failure("auto-rollback sweep failed")

    def _sweep_expired(self) -> None:
        """Requests past their TTL become EXPIRED (and their cards say so) even when nobody types anything."""
        while not self._stopping.wait(self._expiry_every_s):
            try:
                if self.bot.service.expire_due():
                    self.outbox.wake()
            except Exception:  # the database may be down for a moment; the next sweep tries again
                _log_failure("expiry sweep failed")


def _log_failure(what: str) -> None:
    """A database outage is expected and says all in one line (which database, why); anything else gets its
    traceback. Repeats are collapsed by bot.logfilter."""
    exc = sys.exc_info()[1]
    if isinstance(exc, StoreUnavailable):
        log.warning("%s: %s", what, exc)
    else:
        log.warning(what, exc_info=True)
