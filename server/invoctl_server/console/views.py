"""The console's pages and actions. Each runs the RPCs of the HTTP API's service functions
(route.Services) as the logged-in user, with that RPC's roles: hiding a button is for the
eye, the refusal is here (auth.permit)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
from google.protobuf import timestamp_pb2
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from invoctl.v1 import bulk_pb2 as bpb
from invoctl.v1 import control_pb2 as cpb
from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2 as wpb

from ..api.auth import Principal, acting_as, may, permit, token_hash
from ..api.convert import OUTCOME_FROM_PROTO, STATE_FROM_PROTO, STATE_TO_PROTO
from ..api.errors import http_status_for, to_domain_error
from ..api.refusals import Recorder
from ..domain.errors import InvalidArgument, PermissionDenied, Unauthenticated, echo
from ..domain.states import Outcome, State
from ..http.route import CONTROL, WORKERS, Services
from .actions import ACTIONS, BULK_ACTIONS, applies, rpc
from .session import Session, Sessions

QUICK: dict[str, tuple[State, ...]] = {
    "running": (State.RUNNING,),
    "in-flight": (State.READY, State.RUNNING, State.BACKING_OFF, State.SUSPENDED),
    "not-completed": tuple(s for s in State if s != State.COMPLETED),
    "backing-off": (State.BACKING_OFF,),
    "paused": (State.PAUSED,),
    "scheduled": (State.SCHEDULED,),
    "completed": (State.COMPLETED,),
}
FILTERS = ("service", "handler", "key", "outcome", "deployment", "created_after",
           "created_before", "id", "idempotency_key")  # fmt: skip
PAGE_SIZE = 50
FOLD = 200  # values longer than this are folded


def _ts(value: timestamp_pb2.Timestamp | None) -> str:
    if value is None or (value.seconds == 0 and value.nanos == 0):
        return ""
    return value.ToDatetime(tzinfo=UTC).isoformat(timespec="milliseconds")


def _time(text: str, name: str) -> timestamp_pb2.Timestamp:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{name} must be an ISO 8601 time, not {echo(text)}") from None
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))
    return out


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form (what our pages and htmx send), read within the body limit; no
    multipart, so no parser dependency."""
    body = await request.body()
    if len(body) > 64 * 1024:
        raise InvalidArgument("the form is larger than 64 KiB")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


class Filter:
    """The list filter, as the URL spells it (so a link shares it)."""

    def __init__(self, params) -> None:
        self.values = {k: params.get(k, "").strip() for k in FILTERS}
        self.quick = params.get("quick", "")
        self.states = [s for v in params.getlist("state") for s in v.split(",") if s]
        for s in self.states:
            if s not in {str(x) for x in State}:
                raise InvalidArgument(f"state {echo(s)} is not one of {', '.join(map(str, State))}")
        if self.quick:
            if self.quick not in QUICK:
                raise InvalidArgument(
                    f"quick filter {echo(self.quick)} is not one of {list(QUICK)}"
                )
            self.states = [str(s) for s in QUICK[self.quick]]

    def query(self, **override: str) -> str:
        items = [(k, v) for k, v in self.values.items() if v and k not in override]
        if self.quick and "quick" not in override and "state" not in override:
            items.append(("quick", self.quick))
        elif "state" not in override:
            items += [("state", s) for s in self.states]
        items += [(k, v) for k, v in override.items() if v]
        return urlencode(items)

    def selects(self) -> bool:
        """Whether it is a bulk selector: the server refuses one that matches everything
        (EMPTY_SELECTOR), and outcome and idempotency key are not selector fields."""
        v = self.values
        if v["outcome"] or v["idempotency_key"]:
            return False
        return bool(self.states) or any(v[k] for k in FILTERS if k not in (
            "outcome", "idempotency_key"))  # fmt: skip

    def _proto_states(self) -> list[int]:
        return [STATE_TO_PROTO[State(s)] for s in self.states]

    def list_request(self, page_token: str) -> cpb.ListInvocationsRequest:
        v = self.values
        request = cpb.ListInvocationsRequest(
            service=v["service"], handler=v["handler"], key=v["key"],
            states=self._proto_states(), deployment_id=v["deployment"],
            idempotency_key=v["idempotency_key"], page_size=PAGE_SIZE, page_token=page_token,
        )  # fmt: skip
        if v["outcome"]:
            if v["outcome"] not in {str(o) for o in Outcome}:
                raise InvalidArgument(f"outcome {echo(v['outcome'])} is not one of {list(Outcome)}")
            from ..api.convert import OUTCOME_TO_PROTO

            request.outcome = OUTCOME_TO_PROTO[Outcome(v["outcome"])]
        for name in ("created_before", "created_after"):
            if v[name]:
                getattr(request, name).CopyFrom(_time(v[name], name))
        return request

    def selector(self, states: list[State] | None = None) -> bpb.BulkSelector:
        """The bulk selector of this filter (outcome and idempotency key are not bulk
        selector fields: the page says so, and refuses such a filter)."""
        v = self.values
        chosen = self._proto_states() if states is None else [STATE_TO_PROTO[s] for s in states]
        selector = bpb.BulkSelector(
            service=v["service"], handler=v["handler"], key=v["key"], states=chosen,
            deployment_id=v["deployment"],
            invocation_ids=[v["id"]] if v["id"] else [],
        )  # fmt: skip
        for name in ("created_before", "created_after"):
            if v[name]:
                getattr(selector, name).CopyFrom(_time(v[name], name))
        return selector


class Console:
    def __init__(
        self,
        services: Services,
        sessions: Sessions,
        *,
        state_counts: Callable[[], Awaitable[dict[str, int] | None]],
        trace_url_template: str | None,
        stopping: asyncio.Event,
        refusals: Recorder | None = None,
    ) -> None:
        self.services = services
        # Operator requests refused for the user's role go into the audit log, as the
        # HTTP API's and gRPC's do (api/refusals.py).
        self.refusals = refusals
        self.sessions = sessions
        self.state_counts = state_counts
        self.trace_url_template = trace_url_template
        self.stopping = stopping
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
            autoescape=True,  # every value a page shows is text, whatever it holds
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters.update(
            ts=_ts, state=self._state, outcome=self._outcome,
            bulk_state=lambda v: bpb.BulkOperationState.Name(v).removeprefix(
                "BULK_OPERATION_STATE_").lower(),
            bulk_kind=lambda v: bpb.BulkOperationKind.Name(v).removeprefix(
                "BULK_OPERATION_KIND_").lower(),
        )  # fmt: skip
        self.env.globals.update(
            FOLD=FOLD, trace_url=self._trace_url,
            kind_name=lambda k: pb.JournalEntryKind.Name(k)
            .removeprefix("JOURNAL_ENTRY_KIND_")
            .lower(),
        )  # fmt: skip

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _state(value: int) -> str:
        return str(STATE_FROM_PROTO.get(value, "unknown"))

    @staticmethod
    def _outcome(value: int) -> str:
        return str(OUTCOME_FROM_PROTO.get(value, "")) if value else ""

    def _trace_url(self, trace_id: str) -> str | None:
        if not self.trace_url_template or not trace_id:
            return None
        return self.trace_url_template.replace("{trace_id}", trace_id)

    async def call(self, who: Principal, name: str, request, service: str = CONTROL):
        await self._permit(who, service + name, request)
        return await self.services.call(service + name, request)

    async def _permit(self, who: Principal, method: str, request) -> None:
        try:
            permit(who, method)
        except PermissionDenied as refused:
            if self.refusals is not None:
                await self.refusals.refused_message(method, request, refused)
            raise

    def render(self, template: str, request: Request, who: Principal, session: Session,
               status: int = 200, **context: Any) -> HTMLResponse:  # fmt: skip
        html = self.env.get_template(template).render(
            who=who, csrf=self.sessions.csrf_token(session), auth=self.sessions.tokens is not None,
            path=request.url.path, **context,
        )  # fmt: skip
        return HTMLResponse(html, status_code=status)

    def page(self, handler: Callable[..., Awaitable[Response]], *, changes: bool = False):
        """A console endpoint: the session, the user (or the login page), the same-origin
        and CSRF checks of a state-changing request, and errors as a page."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            session = self.sessions.read(request)
            new_cookie = None
            if session is None and self.sessions.tokens is None:
                session, new_cookie = self.sessions.new()  # auth off: a CSRF nonce only
            try:
                who = self.sessions.principal(session)
            except Unauthenticated:
                if changes:
                    return HTMLResponse("log in first", status_code=401)
                return RedirectResponse("/ui/login", status_code=303)
            assert session is not None
            try:
                form: dict[str, Any] = {}
                if changes:
                    form = await _form(request)
                    self.sessions.check_same_origin(request, session, form)
                with acting_as(who):
                    response = await handler(request, who, session, form)
            except Exception as exc:
                err = to_domain_error(exc)
                if err is None:
                    raise
                status = http_status_for(err)
                response = self.render("error.html", request, who, session, status, error=err)
                if request.headers.get("hx-request"):
                    response.headers["HX-Retarget"] = "#flash"
                    response.headers["HX-Reswap"] = "innerHTML"
            if new_cookie:
                self.sessions.set_cookie(response, new_cookie)
            # The page's server time, for browsers' dev tools and `make bench` (for an
            # event stream, the time to its first byte).
            elapsed = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed:.1f}"
            return response

        return endpoint

    # -- login -------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        session, cookie = self.sessions.new()
        response = HTMLResponse(
            self.env.get_template("login.html").render(
                csrf=self.sessions.csrf_token(session), error="", who=None, auth=True,
                path=request.url.path,
            )
        )  # fmt: skip
        self.sessions.set_cookie(response, cookie)  # the login form's CSRF nonce
        return response

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        session = self.sessions.read(request)
        try:
            self.sessions.check_same_origin(request, session, form)
        except Exception as exc:
            return HTMLResponse(str(exc), status_code=403)
        tokens = self.sessions.tokens
        token = str(form.get("token", "")).strip()
        if tokens is None or tokens.principal_of(token) is None:
            html = self.env.get_template("login.html").render(
                csrf=self.sessions.csrf_token(session) if session else "",
                error="That token is not known.", who=None, auth=True, path="/ui/login",
            )  # fmt: skip
            return HTMLResponse(html, status_code=401)
        _, cookie = self.sessions.new(token_hash(token))
        response = RedirectResponse("/ui/invocations", status_code=303)
        self.sessions.set_cookie(response, cookie)
        return response

    async def logout(self, request, who, session, form) -> Response:
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie("invoctl_console", path="/ui")
        return response

    # -- invocations --------------------------------------------------------------------

    async def invocations(self, request, who, session, form) -> Response:
        f = Filter(request.query_params)
        page_token = request.query_params.get("page_token", "")
        next_token = ""
        if f.values["id"]:
            got = await self.call(
                who, "GetInvocation", cpb.GetInvocationRequest(invocation_id=f.values["id"])
            )
            rows = [got.invocation]
        else:
            page = await self.call(who, "ListInvocations", f.list_request(page_token))
            rows, next_token = list(page.invocations), page.next_page_token
        return self.render(
            "invocations.html", request, who, session, rows=rows, f=f, quick=list(QUICK),
            states=[str(s) for s in State], outcomes=[str(o) for o in Outcome],
            counts=await self.state_counts(), next_token=next_token, page_token=page_token,
            bulk=[a for a in BULK_ACTIONS if may(who, rpc(a.bulk_rpc))],
        )  # fmt: skip

    async def _detail(self, who: Principal, invocation_id: str) -> dict[str, Any]:
        got = await self.call(
            who, "GetInvocation", cpb.GetInvocationRequest(invocation_id=invocation_id)
        )
        inv = got.invocation
        journal = await self.call(
            who, "GetJournal", cpb.GetJournalRequest(invocation_id=invocation_id)
        )
        audit = await self.call(
            who, "ListAuditEntries",
            cpb.ListAuditEntriesRequest(invocation_id=invocation_id, page_size=100),
        )  # fmt: skip
        deployments = await self.call(
            who, "ListDeployments", wpb.ListDeploymentsRequest(service=inv.service), WORKERS
        )
        serving = [
            d for d in deployments.deployments
            if any(s.name == inv.service and any(h.name == inv.handler for h in s.handlers)
                   for s in d.services)
        ]  # fmt: skip
        connected = any(d.id == inv.deployment_id and d.sessions for d in deployments.deployments)
        state = STATE_FROM_PROTO[inv.state]
        actions = [
            a
            for a in ACTIONS.values()
            if applies(a, state, inv.attempt_count) and may(who, rpc(a.rpc))
        ]
        callees = [e.callee_invocation_id for e in journal.entries if e.callee_invocation_id]
        return dict(
            inv=inv, entries=list(journal.entries), transitions=list(journal.transitions),
            audit=list(audit.entries), actions=actions, serving=serving, connected=connected,
            callees=callees, may_restart_from=any(a.name == "restart-as-new" for a in actions),
        )  # fmt: skip

    async def invocation(self, request, who, session, form) -> Response:
        context = await self._detail(who, request.path_params["invocation_id"])
        return self.render("invocation.html", request, who, session, **context)

    async def act(self, request, who, session, form) -> Response:
        """An action from the detail page; answers the page's detail part in its new state
        (htmx swaps it in), or sends the browser to the new invocation of a restart."""
        invocation_id = request.path_params["invocation_id"]
        action = ACTIONS.get(request.path_params["action"])
        if action is None:
            raise InvalidArgument(f"no action {echo(request.path_params['action'])}")
        message = getattr(cpb, f"{action.rpc}Request")(
            invocation_id=invocation_id, reason=str(form.get("reason", ""))[:1000]
        )
        if action.name in ("resume", "restart-as-new") and form.get("deployment"):
            message.deployment = str(form["deployment"])
        if action.name == "restart-as-new" and str(form.get("from", "")).isdigit():
            message.from_entry = int(form["from"])
        try:
            response = await self.call(who, action.rpc, message)
        except Exception as exc:
            # Refused (most often: the page was stale). Show why beside the invocation as
            # it is now, so the buttons are those of its current state.
            err = to_domain_error(exc)
            if err is None:
                raise
            try:
                context = await self._detail(who, invocation_id)
            except Exception:
                raise exc from None  # purged meanwhile, say: the error page explains
            return self.render("_detail.html", request, who, session, http_status_for(err),
                               error=err, **context)  # fmt: skip
        if action.name == "restart-as-new":
            target = f"/ui/invocations/{response.invocation.id}"
            return Response(status_code=200, headers={"HX-Redirect": target})
        if action.name == "purge":
            return Response(status_code=200, headers={"HX-Redirect": "/ui/invocations"})
        context = await self._detail(who, invocation_id)
        return self.render("_detail.html", request, who, session, **context)

    # -- bulk ----------------------------------------------------------------------------

    async def bulk_new(self, request, who, session, form) -> Response:
        """The dry run of a bulk action on the list's filter: how many match, by state,
        how many it would act on and skip, and a sample; then the confirmation form."""
        f = Filter(request.query_params)
        action = ACTIONS.get(request.query_params.get("operation", ""))
        if action is None or not action.bulk_rpc:
            raise InvalidArgument(
                "operation must be one of " + ", ".join(a.name for a in BULK_ACTIONS)
            )
        if f.values["outcome"] or f.values["idempotency_key"]:
            raise InvalidArgument(
                "bulk actions select by service, handler, key, state, deployment, time or "
                "ID: remove outcome and idempotency key"
            )
        dry = await self._dry_run(who, action, f.selector())
        by_state = {
            str(STATE_FROM_PROTO[c.state]): (c.matched, c.would_act_on)
            for c in dry.matched_by_state
        }
        acts = dry.would_act_on
        deployments = await self.call(
            who, "ListDeployments", wpb.ListDeploymentsRequest(service=f.values["service"]),
            WORKERS,
        )  # fmt: skip
        return self.render(
            "bulk_new.html", request, who, session, f=f, action=action, dry=dry,
            by_state=by_state, acts=acts, skips=dry.matched - acts,
            deployments=list(deployments.deployments),
            # A nonce per rendered form: submitting it twice (a double click, a resent
            # POST) re-attaches to the job the first submit started instead of a second.
            request_id="console-" + secrets.token_hex(12),
        )  # fmt: skip

    async def _dry_run(self, who, action, selector) -> bpb.BulkOperationProgress:
        message = getattr(bpb, f"{action.bulk_rpc}Request")(selector=selector, dry_run=True)
        await self._permit(who, rpc(action.bulk_rpc), message)
        stream = self.services.stream(rpc(action.bulk_rpc), message)
        try:
            return await anext(stream)
        finally:
            await stream.aclose()

    async def bulk_start(self, request, who, session, form) -> Response:
        f = Filter(request.query_params)
        action = ACTIONS.get(str(form.get("operation", "")))
        if action is None or not action.bulk_rpc:
            raise InvalidArgument("no such bulk operation")
        message = getattr(bpb, f"{action.bulk_rpc}Request")(
            selector=f.selector(), reason=str(form.get("reason", ""))[:1000],
            request_id=str(form.get("request_id", ""))[:200],
        )  # fmt: skip
        rate = str(form.get("max_per_second", "")).strip()
        if rate:
            try:
                message.max_per_second = float(rate)
            except ValueError:
                raise InvalidArgument(
                    f"max per second must be a number, not {echo(rate)}"
                ) from None
        if action.name in ("resume", "restart-as-new") and form.get("deployment"):
            message.deployment = str(form["deployment"])
        await self._permit(who, rpc(action.bulk_rpc), message)
        stream = self.services.stream(rpc(action.bulk_rpc), message)
        try:
            first = await anext(stream)
        finally:
            await stream.aclose()  # the job runs on in the server, not in this request
        return RedirectResponse(f"/ui/bulk/{first.bulk_operation_id}", status_code=303)

    async def bulk_list(self, request, who, session, form) -> Response:
        page = await self.call(
            who, "ListBulkOperations",
            bpb.ListBulkOperationsRequest(page_token=request.query_params.get("page_token", "")),
        )  # fmt: skip
        return self.render("bulk_list.html", request, who, session, jobs=list(page.bulk_operations),
                           next_token=page.next_page_token)  # fmt: skip

    def _watch(self, who, bulk_id: str):
        permit(who, CONTROL + "WatchBulkOperation")
        return self.services.stream(
            CONTROL + "WatchBulkOperation", bpb.WatchBulkOperationRequest(bulk_operation_id=bulk_id)
        )

    async def bulk(self, request, who, session, form) -> Response:
        stream = self._watch(who, request.path_params["bulk_operation_id"])
        try:
            job = await anext(stream)
        finally:
            await stream.aclose()
        return self.render("bulk.html", request, who, session, job=job,
                           may_stop=may(who, CONTROL + "StopBulkOperation"))  # fmt: skip

    async def bulk_events(self, request, who, session, form) -> Response:
        """The progress part of the bulk page as server-sent events (htmx's SSE extension
        swaps each in), one per snapshot of WatchBulkOperation, then `done`."""
        stream = self._watch(who, request.path_params["bulk_operation_id"])
        first = await anext(stream)
        may_stop = may(who, CONTROL + "StopBulkOperation")
        template = self.env.get_template("_progress.html")
        csrf = self.sessions.csrf_token(session)  # the stop form's, in each swapped part

        async def events():
            job = first
            try:
                while True:
                    html = template.render(job=job, may_stop=may_stop, csrf=csrf)
                    yield ServerSentEvent(data=html, event="progress")
                    if job.final:
                        yield ServerSentEvent(data="", event="done")
                        return
                    step = asyncio.ensure_future(anext(stream))
                    stop = asyncio.ensure_future(self.stopping.wait())
                    await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
                    stop.cancel()
                    if not step.done():
                        step.cancel()
                        with contextlib.suppress(BaseException):
                            await step
                        return
                    job = step.result()
            finally:
                await stream.aclose()

        return EventSourceResponse(events(), ping=15)

    async def bulk_stop(self, request, who, session, form) -> Response:
        bulk_id = request.path_params["bulk_operation_id"]
        await self.call(
            who, "StopBulkOperation", bpb.StopBulkOperationRequest(bulk_operation_id=bulk_id)
        )
        return RedirectResponse(f"/ui/bulk/{bulk_id}", status_code=303)

    # -- audit, deployments -----------------------------------------------------------------

    async def audit(self, request, who, session, form) -> Response:
        """The audit log, filtered by the server (invocation, identity, operation, time),
        a page of 100 at a time."""
        q = request.query_params
        want = {k: q.get(k, "").strip() for k in ("invocation_id", "identity", "operation",
                                                   "after", "before")}  # fmt: skip
        message = cpb.ListAuditEntriesRequest(
            invocation_id=want["invocation_id"], identity=want["identity"],
            operation=want["operation"], page_size=100, page_token=q.get("page_token", ""),
        )  # fmt: skip
        for name in ("after", "before"):
            if want[name]:
                getattr(message, name).CopyFrom(_time(want[name], name))
        page = await self.call(who, "ListAuditEntries", message)
        token = page.next_page_token
        more = urlencode({**{k: v for k, v in want.items() if v}, "page_token": token})
        return self.render("audit.html", request, who, session, entries=list(page.entries),
                           want=want, more=more if token else "")  # fmt: skip

    async def deployments(self, request, who, session, form) -> Response:
        listed = await self.call(who, "ListDeployments", wpb.ListDeploymentsRequest(), WORKERS)
        return self.render("deployments.html", request, who, session,
                           deployments=list(listed.deployments),
                           may_resume=may(who, rpc("ResumeInvocations")))  # fmt: skip

    async def home(self, request, who, session, form) -> Response:
        return RedirectResponse("/ui/invocations", status_code=303)
