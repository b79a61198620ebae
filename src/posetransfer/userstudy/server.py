"""`posetransfer user-study serve`: the raters' page and the JSON API behind it (Starlette).

Routes::

    GET  /                  the page (plain HTML and a little JavaScript; the same for everyone)
    POST /api/session       {"rater": str} -> {"session": str}
    GET  /api/next          ?session=S -> {"trial", "image", "practice", "exposure_ms"} | {"done"}
    GET  /img/TOKEN         the trial's image, once (410 afterwards)
    POST /api/answer        {"session", "trial", "answer": "real"|"fake"} -> {"ok"} (+ "correct"
                            on practice trials only)
    GET  /api/progress      admin: answers per rater    } header "Authorization: Bearer TOKEN"
    GET  /api/export        admin: every answer, CSV    } or ?token=TOKEN

Nothing sent to a rater names a label or a file: trial ids and image URLs are random tokens,
images are all PNGs of one size with no metadata, and responses carry no cache validators.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

from posetransfer.userstudy.protocol import (
    ProtocolError,
    answer,
    next_trial,
    progress,
    show_image,
    start_session,
)
from posetransfer.userstudy.report import answers_csv
from posetransfer.userstudy.store import open_study

PAGE = Path(__file__).with_name("page.html")
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class Connections:
    """One SQLite connection per server thread (Starlette runs sync endpoints in a pool)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.local = threading.local()
        open_study(path).close()  # refused now if it is not a study file

    def get(self) -> sqlite3.Connection:
        db = getattr(self.local, "db", None)
        if db is None:
            db = self.local.db = open_study(self.path)
        return db


def build_app(study: str | Path, admin_token: str | None = None) -> Any:
    """The Starlette application serving ``study``; ``app.state.admin_token`` is the admin's."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    dbs = Connections(Path(study))
    token = admin_token or secrets.token_urlsafe(16)
    page = PAGE.read_text()

    def refused(e: ProtocolError) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=e.status, headers=NO_STORE)

    def ok(body: dict) -> JSONResponse:
        return JSONResponse(body, headers=NO_STORE)

    async def body_of(request: Request) -> dict:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProtocolError("expected a JSON object", 400)
        return body

    def admin(request: Request) -> bool:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        given = given or request.query_params.get("token", "")
        return secrets.compare_digest(given, token)

    def index(request: Request) -> Response:
        return HTMLResponse(page, headers=NO_STORE)

    # Endpoints that read a body are async; their database work runs in the thread pool (as the
    # sync endpoints' does), so that a commit never holds up the event loop.
    async def session(request: Request) -> Response:
        try:
            rater = str((await body_of(request)).get("rater", ""))
            return ok({"session": await run_in_threadpool(lambda: start_session(dbs.get(), rater))})
        except ProtocolError as e:
            return refused(e)

    def next_(request: Request) -> Response:
        try:
            return ok(next_trial(dbs.get(), request.query_params.get("session", "")))
        except ProtocolError as e:
            return refused(e)

    def image(request: Request) -> Response:
        try:
            png = show_image(dbs.get(), request.path_params["token"])
        except ProtocolError as e:
            return Response(status_code=e.status, headers=NO_STORE)
        return Response(png, media_type="image/png", headers=NO_STORE)

    async def answer_(request: Request) -> Response:
        try:
            b = await body_of(request)
            args = (str(b.get("session", "")), str(b.get("trial", "")), b.get("answer"))
            return ok(await run_in_threadpool(lambda: answer(dbs.get(), *args)))
        except ProtocolError as e:
            return refused(e)

    def progress_(request: Request) -> Response:
        if not admin(request):
            return JSONResponse({"error": "admin token required"}, status_code=401)
        return ok(progress(dbs.get()))

    def export(request: Request) -> Response:
        if not admin(request):
            return JSONResponse({"error": "admin token required"}, status_code=401)
        return Response(answers_csv(dbs.get()), media_type="text/csv", headers=NO_STORE)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/session", session, methods=["POST"]),
            Route("/api/next", next_),
            Route("/img/{token}", image),
            Route("/api/answer", answer_, methods=["POST"]),
            Route("/api/progress", progress_),
            Route("/api/export", export),
        ]
    )
    app.state.admin_token = token
    return app


def serve(study: str | Path, host: str = "127.0.0.1", port: int = 7861) -> None:
    """Serve ``study`` until Ctrl-C, printing the raters' URL and the admin token."""
    import uvicorn

    app = build_app(study)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print(f"raters: http://{shown}:{port}/", flush=True)
    print(
        f"admin token: {app.state.admin_token}  (progress: http://{shown}:{port}/api/progress"
        f"?token=...; answers: /api/export?token=...)",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
