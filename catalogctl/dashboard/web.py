"""The dashboard's Flask app: server-rendered pages over `data`, actions over `actions`.

Access: every request carries the token printed with the URL, once in the query
string (`?token=`; the answer sets an HttpOnly, SameSite=Strict cookie and redirects
to the same page without it) and then in that cookie. Tokens are compared in constant
time. Actions are POSTs whose form carries the token as well, so a page of another
site cannot make the browser act (it cannot read the token). The Host header must
name this machine (no DNS rebinding), and pages forbid framing and foreign scripts.
"""

from __future__ import annotations

import csv
import hmac
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import Flask, Response, abort, redirect, render_template, request, url_for
from markupsafe import Markup, escape

from catalogctl.common import Target, UserError
from catalogctl.dashboard import actions, data
from catalogctl.dashboard.jobs import Busy, Jobs

HERE = Path(__file__).resolve().parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
ACTION_NAMES = (
    "resync", "resync-no-reindex", "resync-by-ids", "resend-failed", "confirm-deletions", "redrive",
)  # fmt: skip


def _cookie_name() -> str:
    port = request.host.rsplit(":", 1)[-1] if ":" in request.host else "80"
    return f"catalogctl_dashboard_{port}" if port.isdigit() else "catalogctl_dashboard"


def create_app(
    backend: data.Backend,
    token: str,
    *,
    target: Target | None = None,
    runner: Any = None,
    allowed_hosts: set[str] | None = None,
    clock: Any = None,
) -> Flask:
    app = Flask(
        "catalogctl.dashboard",
        template_folder=str(HERE / "templates"),
        static_folder=str(HERE / "static"),
    )
    jobs = Jobs()
    now = clock or (lambda: datetime.now(UTC))
    app.extensions["catalogctl_jobs"] = jobs
    charts_installed = (HERE / "static" / "vendor" / "uPlot.iife.min.js").exists()

    @app.context_processor
    def common() -> dict[str, Any]:
        return {
            "token": token,
            "label": backend.label,
            "feeds": backend.feeds,
            "now": now(),
            "job": jobs.current,
            "charts_installed": charts_installed,
        }

    _access(app, token, LOCAL_HOSTS | (allowed_hosts or set()))
    _filters(app, now)
    _pages(app, backend, now)
    _failure_pages(app, backend)
    _action_pages(app, backend, jobs, now, target, runner)
    return app


def _refused(why: str, code: int) -> tuple[str, int]:
    return render_template("refused.html", why=why), code


def _access(app: Flask, token: str, hosts: set[str]) -> None:
    """The token (query string once, then an HttpOnly cookie; POST forms carry it
    too), the Host header, and headers that forbid framing and foreign scripts."""

    def token_ok(given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), token.encode())

    @app.before_request
    def guard() -> Any:
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        if host not in hosts:
            return _refused("this dashboard answers on 127.0.0.1 only", 403)
        given = request.args.get("token")
        if given is not None:
            if not token_ok(given):
                return _refused("wrong token", 403)
            if request.method == "GET":  # drop the token from the address bar
                args = {k: v for k, v in request.args.items() if k != "token"}
                resp = redirect(request.path + ("?" + urlencode(args) if args else ""))
                resp.set_cookie(_cookie_name(), token, httponly=True, samesite="Strict", path="/")
                return resp
        elif not token_ok(request.cookies.get(_cookie_name())):
            return _refused(
                "open the address `catalogctl dashboard` printed (it has the token)", 403
            )
        if request.method == "POST" and not token_ok(request.form.get("token")):
            return _refused("this form has no valid token", 403)
        return None

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        return resp


def _feed_arg(backend: data.Backend, default: str | None = None) -> str:
    feed = request.args.get("feed") or default or backend.feeds[0]
    if feed not in backend.feeds:
        abort(404, f"no feed {feed!r}")
    return feed


def _pages(app: Flask, backend: data.Backend, now: Any) -> None:
    """Overview, runs and items: read-only pages."""

    @app.get("/")
    def overview() -> str:
        cards, dlq = data.overview(backend, now())
        return render_template("overview.html", cards=cards, dlq=dlq, page="overview")

    @app.get("/runs")
    def runs() -> str:
        feed = _feed_arg(backend, "products")
        rows = data.runs(backend, feed)
        chart = orjson.dumps(data.chart_data(rows)).decode()
        return render_template("runs.html", feed=feed, rows=rows, chart=chart, page="runs")

    @app.get("/items")
    def items() -> str:
        feed = _feed_arg(backend, "products")
        q = request.args.get("q", "").strip()
        mode = request.args.get("mode", "sku")
        content: dict[str, Any] = {}
        page = None
        if q and mode == "sku":
            rows, bucket = data.find_group(backend, feed, q)
            if bucket is not None:
                content = data.compiled_content(backend, bucket, {r.key for r in rows})
        else:
            page = data.browse(backend, feed, q, request.args.get("cursor"))
            rows = page.rows
        pretty = {
            k: orjson.dumps(v, option=orjson.OPT_INDENT_2).decode() for k, v in content.items()
        }
        return render_template(
            "items.html", feed=feed, q=q, mode=mode, rows=rows, content=pretty,
            sent=data.sent_times(backend, rows), pager=page, page="items",
        )  # fmt: skip


def _failure_filters(backend: data.Backend) -> tuple[list[str], set[str], str]:
    feed = request.args.get("feed", "")
    feeds = [feed] if feed in backend.feeds else backend.feeds
    status = request.args.get("status", "")
    statuses = {status} if status in ("failed", "retry") else {"failed", "retry"}
    return feeds, statuses, request.args.get("reason", "")


def _failure_pages(app: Flask, backend: data.Backend) -> None:
    """The failing items (sorted and paged on the server) and their CSV."""

    @app.get("/failures")
    def failures() -> str:
        feeds, statuses, reason = _failure_filters(backend)
        every = list(data.failures(backend, feeds, statuses))
        groups: dict[str, int] = {}
        for r in every:
            g = data.reason_group(r.state.reason)
            groups[g] = groups.get(g, 0) + 1
        chosen = [r for r in every if not reason or data.reason_group(r.state.reason) == reason]
        sort = request.args.get("sort", "")
        descending = request.args.get("dir") == "desc"
        data.sort_failures(chosen, sort, descending)
        offset = max(0, request.args.get("offset", 0, type=int))
        shown = chosen[offset : offset + data.PAGE_SIZE]
        return render_template(
            "failures.html", rows=shown, total=len(chosen), offset=offset,
            size=data.PAGE_SIZE, groups=sorted(groups.items(), key=lambda g: -g[1]),
            reason=reason, issues=data.last_issues(backend, feeds), sort=sort,
            descending=descending, columns=data.FAILURE_COLUMNS, args=request.args,
            page="failures",
        )  # fmt: skip

    @app.get("/failures.csv")
    def failures_csv() -> Response:
        feeds, statuses, reason = _failure_filters(backend)
        return Response(
            _failures_csv(data.failures(backend, feeds, statuses, reason)),
            mimetype="text/csv",
            headers={"Content-Disposition": "attachment; filename=catalog-sync-failures.csv"},
        )


def _failures_csv(rows: Iterator[data.ItemRow]) -> Iterator[str]:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["feed", "item", "sku_or_group", "status", "reason", "attempts", "since"])
    for r in rows:
        s = r.state
        w.writerow([r.feed, r.label, r.group, s.status.value, s.reason or "", s.attempts,
                    s.changed_at])  # fmt: skip
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    yield out.getvalue()


def _action_pages(
    app: Flask, backend: data.Backend, jobs: Jobs, now: Any, target: Target | None, runner: Any
) -> None:
    """Actions: a confirmation page, then a job that runs in the background."""

    @app.get("/actions")
    def actions_page() -> str:
        cards, dlq = data.overview(backend, now())
        return render_template("actions.html", cards=cards, dlq=dlq, page="actions")

    def form_of() -> dict[str, str]:
        form = {k: v for k, v in request.form.items() if k in ("feed", "ids")}
        if request.form.getlist("id"):
            form["ids"] = ",".join(request.form.getlist("id"))
        return form

    @app.post("/actions/<name>/confirm")
    def confirm(name: str) -> Any:
        if name not in ACTION_NAMES:
            abort(404)
        try:
            action = actions.describe(name, form_of(), backend)
        except UserError as exc:
            return render_template("confirm.html", error=exc.format_message(), page="actions"), 400
        return render_template("confirm.html", action=action, form=form_of(), page="actions")

    @app.post("/actions/<name>/run")
    def run(name: str) -> Any:
        if name not in ACTION_NAMES:
            abort(404)
        if target is None or runner is None:
            return render_template("confirm.html", error="actions are off", page="actions"), 400
        form = form_of()
        try:
            action = actions.describe(name, form, backend)
            job = jobs.start(action.title, actions.runner_for(name, form, backend, target, runner))
        except (UserError, Busy) as exc:
            message = exc.format_message() if isinstance(exc, UserError) else str(exc)
            return render_template("confirm.html", error=message, page="actions"), 409
        return redirect(url_for("job", job_id=job.id), code=303)

    @app.get("/jobs/<job_id>")
    def job(job_id: str) -> str:
        found = jobs.get(job_id)
        if found is None:
            abort(404)
        return render_template("job.html", j=found, page="actions")

    @app.get("/jobs/<job_id>.json")
    def job_json(job_id: str) -> Response:
        found = jobs.get(job_id)
        if found is None:
            abort(404)
        return Response(orjson.dumps(found.as_json()), mimetype="application/json")


def _filters(app: Flask, now: Any) -> None:
    @app.template_filter("num")
    def num(value: Any) -> str:
        if value is None or value == "":
            return "-"
        return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"

    @app.template_filter("when")
    def when(value: str | None) -> Markup:
        """Absolute time (UTC) with the relative one; sortable by its ISO value."""
        t = data.parse_time(value)
        if t is None:
            return Markup('<span class="muted">-</span>')
        t = t.astimezone(UTC)
        return Markup(
            '<time datetime="{iso}" title="{iso}">{abs}</time> <span class="rel">({rel})</span>'
        ).format(
            iso=t.isoformat(), abs=t.strftime("%Y-%m-%d %H:%M:%S UTC"), rel=data.relative(t, now())
        )

    @app.template_filter("age")
    def age(value: str | None) -> str:
        t = data.parse_time(value)
        return data.relative(t, now()) if t else "never"

    @app.template_filter("dur")
    def dur(seconds: float | None) -> str:
        if seconds is None:
            return "-"
        if seconds < 60:
            return f"{seconds:.1f} s"
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"

    @app.template_filter("keylabel")
    def keylabel(key: str) -> Markup:
        return escape(key.replace("\x1f", " / "))
