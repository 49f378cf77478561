"""The listening-study page in headless Chromium: play both clips, answer, check the database."""

from __future__ import annotations

from pathlib import Path

from singsong.app import StudySettings, create_study_app
from singsong.app.study import StudyDB, make_study, pair_results
from tests.test_app import live_server
from tests.test_app_browser import chromium, pytestmark  # noqa: F401  (skip without Chromium)
from tests.test_study import SYSTEMS, system_folders


def test_answer_pairs_in_the_browser(tmp_path: Path) -> None:
    make_study(tmp_path / "study", system_folders(tmp_path), vocals=tmp_path / "vocals")
    db_path = tmp_path / "answers.sqlite"
    app = create_study_app(StudySettings(tmp_path / "study", db_path))
    with live_server(app) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_function("document.body.dataset.trial")
        assert page.inner_text("#total") == "6"
        html = page.content()
        assert not any(name in html for name in SYSTEMS)  # nothing tells the systems apart
        assert page.is_visible("#play-vocals")
        trials = []
        for k in range(3):
            trial = page.evaluate("document.body.dataset.trial")
            trials.append(trial)
            assert page.is_disabled("#choose-a")  # must listen first
            page.click("#play-a")
            page.wait_for_selector(".clip.heard", timeout=20_000)
            assert page.is_disabled("#choose-a")  # one clip is not enough
            page.click("#play-b")
            page.wait_for_function("!document.querySelector('#choose-b').disabled", timeout=20_000)
            page.click("#choose-b" if k < 2 else "#choose-a")
            page.wait_for_function(f"document.querySelector('#count').textContent === '{k + 1}'")
            page.wait_for_function(f"document.body.dataset.trial !== '{trial}'")
        assert errors == []
        cookie = next(c for c in page.context.cookies() if c["name"] == "singsong_listener")

    answers = StudyDB(db_path).answers()
    assert [a.choice for a in answers] == ["b", "b", "a"]
    assert {a.listener for a in answers} == {cookie["value"]}
    assert len({(a.item, frozenset((a.system_a, a.system_b))) for a in answers}) == 3
    assert sum(r.n for r in pair_results(answers)) == 3
