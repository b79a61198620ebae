"""The study's rules, enforced by the server whatever the page does.

* A rater (a name or code) gets a session and a personal order: the practice images in a random
  order, then the judged ones in a random order. The same name again continues that session.
* `next_trial` gives the rater's current trial: an opaque random trial id and an image URL that
  says nothing (a random token made for this trial only). A trial whose image was already shown
  but not answered (the page was reloaded) is closed as "abandoned" and the rater moves on: an
  image is never shown twice to a rater.
* `show_image` serves a trial's image once; `answer` accepts one answer per trial, only for the
  rater's current trial, records the time from showing to answering and flags answers outside
  the window (too fast, too slow, or with the image never shown). Practice answers are told
  whether they were right; judged ones are not.

Every write is one ``BEGIN IMMEDIATE`` transaction, committed before the reply.
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
import time
from typing import Any

from posetransfer.errors import InputError
from posetransfer.userstudy.store import settings, transaction

ANSWERS = ("real", "fake")
MAX_NAME = 80


class ProtocolError(InputError):
    """A request the protocol refuses (HTTP 409 or 404), with the reason."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def start_session(db: sqlite3.Connection, rater: str) -> str:
    """The rater's session id: a new one with a personal order, or theirs if the name exists."""
    rater = rater.strip()
    if not rater or len(rater) > MAX_NAME:
        raise ProtocolError(f"rater: give a name or code of 1 to {MAX_NAME} characters", 400)
    with transaction(db):
        row = db.execute("SELECT session FROM raters WHERE name = ?", (rater,)).fetchone()
        if row is not None:
            return row["session"]
        rng = random.SystemRandom()
        order = {}
        for practice in (1, 0):
            ids = [
                r["id"] for r in db.execute("SELECT id FROM images WHERE practice = ?", (practice,))
            ]
            rng.shuffle(ids)
            order[practice] = ids
        session = secrets.token_urlsafe(16)
        db.execute(
            "INSERT INTO raters VALUES (?, ?, ?, ?, ?)",
            (session, rater, time.time(), json.dumps(order[1]), json.dumps(order[0])),
        )
    return session


def _rater(db: sqlite3.Connection, session: str) -> sqlite3.Row:
    row = db.execute("SELECT * FROM raters WHERE session = ?", (session,)).fetchone()
    if row is None:
        raise ProtocolError("session: unknown; start again with your name", 404)
    return row


def next_trial(db: sqlite3.Connection, session: str) -> dict[str, Any]:
    """The rater's current trial (issued now if needed), or ``{"done": True}``."""
    exposure = settings(db)["protocol"]["exposure_ms"]
    with transaction(db):
        rater = _rater(db, session)
        order = json.loads(rater["practice_order"]) + json.loads(rater["judged_order"])
        n_practice = len(json.loads(rater["practice_order"]))
        last = db.execute(
            "SELECT * FROM trials WHERE session = ? ORDER BY position DESC LIMIT 1", (session,)
        ).fetchone()
        if last is not None and last["answer"] is None and last["flag"] is None:
            if last["shown_at"] is None:  # issued, image not yet shown: the same trial again
                return _trial_reply(last, exposure)
            db.execute(  # shown and not answered (a reload): closed, never shown again
                "UPDATE trials SET flag = 'abandoned' WHERE trial = ?", (last["trial"],)
            )
        position = 0 if last is None else last["position"] + 1
        if position >= len(order):
            return {"done": True}
        row = {
            "trial": secrets.token_urlsafe(12),
            "image_token": secrets.token_urlsafe(24),
            "practice": int(position < n_practice),
        }
        db.execute(
            "INSERT INTO trials (trial, session, position, image_id, practice, image_token, "
            "issued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                row["trial"],
                session,
                position,
                order[position],
                row["practice"],
                row["image_token"],
                time.time(),
            ),
        )
    return _trial_reply(row, exposure)


def _trial_reply(row: Any, exposure: int) -> dict[str, Any]:
    return {
        "trial": row["trial"],
        "image": f"/img/{row['image_token']}",
        "practice": bool(row["practice"]),
        "exposure_ms": exposure,
    }


def show_image(db: sqlite3.Connection, token: str) -> bytes:
    """The PNG of a trial's image, once; the time it was shown is recorded."""
    with transaction(db):
        row = db.execute(
            "SELECT t.trial, t.shown_at, t.flag, i.png FROM trials t JOIN images i "
            "ON i.id = t.image_id WHERE t.image_token = ?",
            (token,),
        ).fetchone()
        if row is None:
            raise ProtocolError("image: unknown", 404)
        if row["shown_at"] is not None or row["flag"] is not None:
            raise ProtocolError("image: already shown (each image is shown once)", 410)
        db.execute("UPDATE trials SET shown_at = ? WHERE trial = ?", (time.time(), row["trial"]))
    return bytes(row["png"])


def answer(db: sqlite3.Connection, session: str, trial: str, value: str) -> dict[str, Any]:
    """Record the rater's answer to their current trial; ``{"ok": True}`` (+ ``correct`` on
    practice trials)."""
    if value not in ANSWERS:
        raise ProtocolError(f"answer: {value!r}; answer real or fake", 400)
    window = settings(db)["protocol"]
    now = time.time()
    with transaction(db):
        _rater(db, session)
        row = db.execute(
            "SELECT t.*, i.label FROM trials t JOIN images i ON i.id = t.image_id "
            "WHERE t.trial = ? AND t.session = ?",
            (trial, session),
        ).fetchone()
        if row is None:
            raise ProtocolError("trial: not a trial of this session", 404)
        if row["answer"] is not None or row["flag"] == "abandoned":
            raise ProtocolError("trial: already closed (one answer per trial)")
        last = db.execute(
            "SELECT MAX(position) AS p FROM trials WHERE session = ?", (session,)
        ).fetchone()
        if row["position"] != last["p"]:
            raise ProtocolError("trial: not the current trial (answers come in order)")
        if row["shown_at"] is None:
            rt, flag = None, "image not shown"
        else:
            rt = 1000 * (now - row["shown_at"])
            flag = (
                "too fast"
                if rt < window["min_rt_ms"]
                else "too slow"
                if rt > window["max_rt_ms"]
                else None
            )
        db.execute(
            "UPDATE trials SET answer = ?, answered_at = ?, rt_ms = ?, flag = ? WHERE trial = ?",
            (value, now, rt, flag, trial),
        )
    reply: dict[str, Any] = {"ok": True}
    if row["practice"]:
        reply["correct"] = value == row["label"]
    return reply


def progress(db: sqlite3.Connection) -> dict[str, Any]:
    """Per rater: trials answered of all, flags (the admin's view)."""
    n_images = db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    raters = []
    for r in db.execute(
        "SELECT r.name, COUNT(t.answer) AS answered, SUM(t.flag IS NOT NULL) AS flagged "
        "FROM raters r LEFT JOIN trials t ON t.session = r.session GROUP BY r.session "
        "ORDER BY r.created"
    ):
        raters.append({"rater": r["name"], "answered": r["answered"], "flagged": r["flagged"] or 0})
    return {"trials_per_rater": n_images, "raters": raters}
