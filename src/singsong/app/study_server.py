"""``create_study_app(settings)``: the listening-study page and its API.

Each request for a trial draws an item and a pair of its systems that this listener has judged
least often, in random left/right order, and stores it under an unguessable token. The page gets
only the token and opaque audio URLs (``/api/trials/{token}/a``): system names never reach the
browser, so a listener cannot tell which system is which. Listeners are told apart by a random
cookie; answers go to SQLite (:class:`~singsong.app.study.StudyDB`).
"""

from __future__ import annotations

import random
import re
import secrets
from collections import Counter
from typing import Literal

from fastapi import Cookie, FastAPI, HTTPException, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from singsong.app.server import STATIC_DIR
from singsong.app.settings import StudySettings
from singsong.app.study import StudyDB, all_pairs, load_study

__all__ = ["LISTENER_COOKIE", "create_study_app"]

LISTENER_COOKIE = "singsong_listener"
_LISTENER = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_COOKIE_AGE = 180 * 24 * 3600


class Trial(BaseModel):
    trial: str
    a: str
    b: str
    vocals: str | None
    answered: int
    total: int


class AnswerIn(BaseModel):
    trial: str
    choice: Literal["a", "b"]


class AnswerOut(BaseModel):
    answered: int


def _listener(cookie: str | None, response: Response) -> str:
    """The listener's id from the cookie, or a fresh one (set on ``response``)."""
    if cookie is not None and _LISTENER.match(cookie):
        return cookie
    listener = secrets.token_urlsafe(16)
    response.set_cookie(
        LISTENER_COOKIE, listener, max_age=_COOKIE_AGE, httponly=True, samesite="lax"
    )
    return listener


def create_study_app(settings: StudySettings, *, rng: random.Random | None = None) -> FastAPI:
    """Build the study app over ``settings.study_dir``; ``rng`` makes the draws reproducible."""
    study = load_study(settings.study_dir)
    db = StudyDB(settings.db)
    pairs = all_pairs(study)
    draw = rng or random.SystemRandom()

    app = FastAPI(
        title="singsong listening study", version="1", docs_url=None, redoc_url=None
    )  # no /docs: its page loads scripts from a CDN
    app.state.db = db
    app.state.study = study
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index(listener: str | None = Cookie(None, alias=LISTENER_COOKIE)) -> FileResponse:
        page = FileResponse(
            STATIC_DIR / "study" / "index.html", headers={"Cache-Control": "no-cache"}
        )
        _listener(listener, page)  # set the cookie before the page asks for its first trial
        return page

    @app.get("/api/trial", response_model=Trial)
    def new_trial(
        response: Response, listener: str | None = Cookie(None, alias=LISTENER_COOKIE)
    ) -> Trial:
        who = _listener(listener, response)
        mine = db.answers(who)
        done = Counter((a.item, *sorted((a.system_a, a.system_b))) for a in mine)
        # least-judged comparisons first: every pair once before any twice
        fewest = min(done[p] for p in pairs)
        item, x, y = draw.choice([p for p in pairs if done[p] == fewest])
        a, b = (x, y) if draw.random() < 0.5 else (y, x)
        token = secrets.token_urlsafe(16)
        db.add_trial(token, who, item, a, b)
        entry = study.item(item)
        has_vocals = entry is not None and entry.vocals is not None
        base = f"/api/trials/{token}"
        return Trial(
            trial=token,
            a=f"{base}/a",
            b=f"{base}/b",
            vocals=f"{base}/vocals" if has_vocals else None,
            answered=len(mine),
            total=len(pairs),
        )

    @app.get("/api/trials/{token}/{which}", response_class=FileResponse)
    def trial_audio(
        token: str,
        which: Literal["a", "b", "vocals"],
        listener: str | None = Cookie(None, alias=LISTENER_COOKIE),
    ) -> FileResponse:
        found = db.trial(token, listener) if listener else None
        item = study.item(found[0]) if found else None
        if found is None or item is None:
            raise HTTPException(404, "no such trial for this listener")
        path = item.vocals if which == "vocals" else item.systems[found[1 if which == "a" else 2]]
        if path is None:
            raise HTTPException(404, "this item has no vocals-only clip")
        # the same opaque name for every clip: the file name must not reveal the system
        return FileResponse(
            path, filename=f"clip-{which}{path.suffix}", content_disposition_type="inline"
        )

    @app.post("/api/answer", response_model=AnswerOut, responses={404: {}, 409: {}})
    def answer(
        body: AnswerIn, listener: str | None = Cookie(None, alias=LISTENER_COOKIE)
    ) -> AnswerOut:
        ok = db.answer(body.trial, listener, body.choice) if listener else None
        if ok is None:
            raise HTTPException(404, "no such trial for this listener (reload the page)")
        if not ok:
            raise HTTPException(409, "this pair was already answered")
        return AnswerOut(answered=len(db.answers(listener)))

    return app
