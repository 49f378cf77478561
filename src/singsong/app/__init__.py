"""The web app: record or upload singing, hear and download accompaniments (``singsong serve``),
and the pairwise listening-study page (``singsong study serve``).

Everything hangs off app factories (:func:`create_app`, :func:`create_study_app`) that take a
frozen settings object: no module-level mutable state, so tests can run several apps side by side.
FastAPI and uvicorn are the ``app`` extra; import this package only where they are installed.
"""

from __future__ import annotations

from singsong.app.server import create_app
from singsong.app.settings import AppSettings, StudySettings
from singsong.app.study_server import create_study_app

__all__ = ["AppSettings", "StudySettings", "create_app", "create_study_app"]
