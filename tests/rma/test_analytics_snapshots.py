"""Precomputed failure analytics (issue 7): the tick job "analytics-snapshot" stores the
dashboard of each standard filter (every model, each model; the last twelve months),
the page and its exports read it (one row, none of the aggregate queries), other
filters are computed live; stale snapshots are rebuilt, two ticks at once store one row
per key, and managers and admins may recompute at once.

The world is the known-answer data of tests/rma/test_analytics.py (TK3 and TK5); the
clock says 2026-11-25 12:00 in Shanghai.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from rma.extensions import db
from rma.models import AnalyticsSnapshot, AuditEvent, Customer, ProductModel
from tests.conftest import PG_URL, count_queries
from tests.rma.test_analytics import MAR, _Rmas, _units, build_world

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
KEYS = {"all", "model:TK3", "model:TK5"}

needs_postgres = pytest.mark.parametrize("database_url", [
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL"))
], indirect=True)


@pytest.fixture
def world(app, make_model, make_customer):
    return build_world(app, make_model, make_customer)


def run_job(app, now=NOW):
    from rma.services.analytics_snapshots import analytics_snapshot_job

    with app.app_context():
        return analytics_snapshot_job(now)


def snapshots(app) -> dict[str, datetime]:
    with app.app_context():
        return dict(db.session.execute(
            select(AnalyticsSnapshot.key, AnalyticsSnapshot.built_at)).all())


def live_board(app, model_id=None):
    from rma import clock
    from rma.services import analytics

    with app.test_request_context(headers={"Accept-Language": "en"}):
        return analytics.dashboard(analytics.default_filters(clock.today(), model_id),
                                   clock.now())


def add_returns(app, n: int) -> None:
    """``n`` more free TK3 returns reported in March (a new lot L-Z)."""
    with app.app_context():
        customer_id = db.session.scalar(select(Customer.id))
        tk3 = db.session.scalar(select(ProductModel.id).where(ProductModel.code == "TK3"))
        units = _units(tk3, customer_id, "L-Z", NOW.date() - timedelta(days=400), n, "TKZ")
        rmas = _Rmas(customer_id)
        rmas.count = 500
        rmas.add(MAR, [(u, "closed", "quality_defect", "free", 30) for u in units])
        db.session.commit()


def page(client, query: str = "") -> str:
    response = client.get("/staff/analytics/" + query)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def tk3_returns(text: str) -> str:
    """The TK3 row of the per-model table."""
    table = text.split('id="table-by-model"', 1)[1].split("</table>", 1)[0]
    return next(row for row in table.split("<tr") if ">TK3<" in row)


# -- the payload ------------------------------------------------------------------------
def test_issue7_snapshot_round_trips_to_exactly_the_live_figures(app, world):
    from rma.services import analytics_snapshots as snap

    for model_id in (None, world["tk3"], world["tk5"]):
        live = live_board(app, model_id)
        with app.test_request_context(headers={"Accept-Language": "en"}):
            loaded = snap.load(json.loads(json.dumps(snap.dump(live))))
        assert loaded == live  # every row, Decimal, date and table, field by field
        assert loaded.tables == live.tables
    assert run_job(app).summary == "analytics-snapshot: built 3"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        built_at, stored = snap.read("model:TK3")
    assert built_at == NOW
    assert stored == live_board(app, world["tk3"])
    assert stored.tables["by-lot"].rows[0] == ("TK3", "L-A", 1000, 40,
                                               live_board(app).lots[0].rate,
                                               live_board(app).lots[0].model_rate, "yes")


def test_issue7_payload_of_another_version_is_ignored_and_replaced(app, world, login):
    assert run_job(app).items == 3
    with app.app_context():
        db.session.execute(update(AnalyticsSnapshot).where(AnalyticsSnapshot.key == "all")
                           .values(payload={"version": 0}))
        db.session.commit()
    text = page(login("manager"))
    assert 'id="section-flagged-lots"' in text and "L-A" in text
    with app.app_context():
        payload = db.session.scalar(select(AnalyticsSnapshot.payload)
                                    .where(AnalyticsSnapshot.key == "all"))
    assert payload["version"] == 1


# -- the page ---------------------------------------------------------------------------
def test_issue7_page_from_a_snapshot_runs_no_aggregate_query(app, world, login):
    run_job(app)
    client = login("support")
    page(client)  # the log-in's first page loads settle
    for query in ("", f"?model={world['tk5']}", "?export=by-lot&format=csv"):
        with count_queries(app) as seen:
            response = client.get("/staff/analytics/" + query)
        assert response.status_code == 200
        assert len(seen) <= 4, seen
        assert not [s for s in seen if "GROUP BY" in s.upper() or "rma_items" in s], seen
    # A filter that is not standard is computed live: the aggregate queries run.
    with count_queries(app) as seen:
        page(client, "?date_from=2026-01-01")
    assert any("GROUP BY" in s.upper() for s in seen)


def test_issue7_page_says_as_of_when_from_a_snapshot_and_live_otherwise(app, world, login):
    run_job(app)
    client = login("finance")
    text = page(client)
    assert ("Figures as of 2026-11-25 12:00 (China time), refreshed every 15 minutes by "
            "rma tick.") in text
    assert 'id="analytics-recompute"' not in text  # finance may not recompute
    live = page(client, f"?model={world['tk3']}&date_from=2026-03-01&date_to=2026-03-31")
    assert "Computed live for this filter just now." in live
    assert "Figures as of" not in live
    # The default dates typed in by hand are the standard filter: from the snapshot.
    assert "Figures as of" in page(client, "?date_from=2025-12-01&date_to=2026-11-25")


@pytest.mark.parametrize("app_config", [{"ANALYTICS_SNAPSHOT_MINUTES": 30}])
def test_issue7_page_names_the_configured_refresh_interval(app, world, login):
    run_job(app)
    assert "refreshed every 30 minutes by rma tick" in page(login("manager"))


def test_issue7_without_a_snapshot_the_page_computes_live_and_stores_it(app, world, login):
    client = login("manager")
    text = page(client, f"?model={world['tk5']}")
    assert "Figures as of 2026-11-25 12:00" in text
    assert set(snapshots(app)) == {"model:TK5"}
    with app.test_request_context(headers={"Accept-Language": "en"}):
        from rma.services.analytics_snapshots import read

        assert read("model:TK5")[1] == live_board(app, world["tk5"])
    # The job builds only the missing ones.
    assert run_job(app).summary == "analytics-snapshot: built 2"


def test_issue7_page_and_export_show_the_snapshot_until_it_is_rebuilt(app, world, login):
    run_job(app)
    add_returns(app, 10)  # TK3: 64 -> 74 returns
    client = login("manager")
    assert ">64<" in tk3_returns(page(client))
    export = client.get("/staff/analytics/?export=by-model&format=csv")
    assert "TK3,TK3 token,4010,64," in export.data.decode("utf-8-sig")  # same source
    app.config["FIXED_NOW"] = (NOW + timedelta(minutes=16)).isoformat()
    assert run_job(app, NOW + timedelta(minutes=16)).summary == "analytics-snapshot: built 3"
    text = page(client)
    assert ">74<" in tk3_returns(text)
    assert "Figures as of 2026-11-25 12:16" in text


def test_issue7_a_snapshot_of_yesterday_is_not_shown_for_today(app, world, login):
    """The tick did not run since midnight: yesterday's range is not today's filter, so
    the page computes today's live (and stores it)."""
    yesterday = NOW - timedelta(days=1)
    app.config["FIXED_NOW"] = yesterday.isoformat()
    run_job(app, yesterday)
    add_returns(app, 10)
    app.config["FIXED_NOW"] = NOW.isoformat()
    text = page(login("manager"))
    assert ">74<" in tk3_returns(text)
    assert "Figures as of 2026-11-25 12:00" in text
    assert snapshots(app)["all"] == NOW


# -- the tick job -----------------------------------------------------------------------
def test_issue7_job_is_idle_while_the_snapshots_are_fresh(app, world):
    first = run_job(app)
    assert (first.summary, first.busy, first.items) == ("analytics-snapshot: built 3", True, 3)
    assert set(snapshots(app)) == KEYS
    for minutes in (0, 5, 14):
        idle = run_job(app, NOW + timedelta(minutes=minutes))
        assert (idle.summary, idle.busy, idle.items) == ("analytics-snapshot: none", False, 0)
    assert set(snapshots(app).values()) == {NOW}


def test_issue7_job_rebuilds_stale_snapshots(app, world):
    run_job(app)
    later = NOW + timedelta(minutes=15)
    assert run_job(app, later).summary == "analytics-snapshot: built 3"
    assert set(snapshots(app).values()) == {later}
    with app.app_context():  # one row per key, replaced in place
        assert db.session.scalar(select(func.count()).select_from(AnalyticsSnapshot)) == 3


def test_issue7_job_rebuilds_when_the_china_date_changes(app, world):
    evening = datetime(2026, 11, 25, 15, 55, tzinfo=UTC)  # 23:55 in Shanghai
    run_job(app, evening)
    assert run_job(app, evening + timedelta(minutes=4)).summary == "analytics-snapshot: none"
    midnight = evening + timedelta(minutes=6)  # 00:01 on the 26th, 6 minutes later
    assert run_job(app, midnight).summary == "analytics-snapshot: built 3"


@pytest.mark.parametrize("app_config", [{"ANALYTICS_SNAPSHOT_MINUTES": 60}])
def test_issue7_job_follows_the_configured_interval(app, world):
    run_job(app)
    assert run_job(app, NOW + timedelta(minutes=59)).summary == "analytics-snapshot: none"
    assert run_job(app, NOW + timedelta(minutes=60)).items == 3


def test_issue7_job_builds_a_new_models_snapshot(app, world, make_model):
    run_job(app)
    make_model("TK7")
    assert run_job(app, NOW + timedelta(minutes=1)).summary == "analytics-snapshot: built 1"
    assert set(snapshots(app)) == KEYS | {"model:TK7"}


def test_issue7_rma_tick_runs_the_job_then_stays_quiet(app, world, runner):
    first = runner.invoke(args=["tick"])
    assert first.exit_code == 0, first.output
    assert "daily-briefs: none; analytics-snapshot: built 3; advisory-deadline" in first.output
    again = runner.invoke(args=["tick"])
    assert "analytics-snapshot: none; advisory-deadline" in again.output


def test_issue7_a_writer_that_read_an_older_row_does_not_overwrite(app, world):
    """A tick that read the row before another tick replaced it stores nothing."""
    from rma.services import analytics_snapshots as snap

    run_job(app)
    later = NOW + timedelta(minutes=20)
    with app.test_request_context():
        board = live_board(app)
        assert snap.store("all", board, later, NOW)  # saw NOW: writes
        assert not snap.store("all", board, later + timedelta(minutes=1), NOW)  # saw NOW too
        assert not snap.store("all", board, later, None)  # saw no row: someone inserted
        db.session.commit()
    assert snapshots(app)["all"] == later


@needs_postgres
def test_issue7_two_ticks_at_once_store_one_row_per_key(app, world):
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def tick(index: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results[index] = run_job(app)
            except Exception as error:  # noqa: BLE001 - the assertion reports it
                results[index] = ("crash", repr(error))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(not isinstance(r, tuple) for r in results), results
    assert sum(r.items for r in results) == 3, [r.summary for r in results]
    assert sum(r.failed for r in results) == 0
    with app.app_context():
        keys = db.session.scalars(select(AnalyticsSnapshot.key)).all()
    assert sorted(keys) == sorted(KEYS)
    # Once more, both stale now: each key is replaced by exactly one of them.
    later = NOW + timedelta(minutes=30)

    def again(index: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results[index] = run_job(app, later)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=again, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(r.items for r in results) == 3, [r.summary for r in results]
    assert set(snapshots(app).values()) == {later} and set(snapshots(app)) == KEYS


# -- recompute now --------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["support", "finance"])
def test_issue7_recompute_is_refused_to_support_and_finance(app, world, login, role):
    run_job(app)
    client = login(role)
    assert 'id="analytics-recompute"' not in page(client)
    assert client.post("/staff/analytics/recompute", data={"model": ""}).status_code == 403
    assert set(snapshots(app).values()) == {NOW}


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_issue7_recompute_now_stores_fresh_figures(app, world, login, role):
    run_job(app)
    add_returns(app, 10)
    client = login(role)
    assert 'id="analytics-recompute"' in page(client, f"?model={world['tk3']}")
    later = NOW + timedelta(minutes=3)
    app.config["FIXED_NOW"] = later.isoformat()
    response = client.post("/staff/analytics/recompute", data={"model": str(world["tk3"])})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/staff/analytics/?model={world['tk3']}")
    built = snapshots(app)
    assert built["model:TK3"] == later and built["all"] == NOW  # only that filter
    text = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Figures recomputed." in text and "Figures as of 2026-11-25 12:03" in text
    assert ">74<" in tk3_returns(text)
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "analytics_snapshot.recomputed")).one()
        assert event.entity_id == "model:TK3" and event.actor_id is not None
