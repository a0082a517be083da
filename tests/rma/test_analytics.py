"""Failure analytics (issue 7) on generated data with known answers: rates per model,
lot and shipment month, flagged lots, cause mix, months of service, warranty cost, the
72-hour trend; the page (roles, charts beside tables, escaping), CSV export, a bounded
number of queries; the admin model form's unit cost and ``rma add-model --unit-cost``.

The clock says 2026-11-25 (tests.conftest): the default range is 2025-12-01..2026-11-25.

World (TK3 unit cost 35.00, TK5 55.00):
* TK3 lot L-A: 1,000 units shipped 2025-01-15, 40 returns (4.0 %): 20 reported
  2026-02-15 and 20 on 2026-03-20, each 15 quality defects (free, clocks) + 5 dropped
  (paid); plus one rejected item (not a return).
* TK3 lot L-B: 3,000 units shipped 2025-03-31, 20 returns not inspected yet (2026-03-20).
* TK3 lot L-C: 10 units shipped 2025-06-01, 4 no-fault-found returns (2026-03-20).
* TK5 lot ``<script>``: 100 units shipped 2025-02-10, 2 free returns (2026-03-20).
TK3: 4,010 shipped, 64 returns = 1.6 %; L-A is at least twice that with >= 5 returns
(flagged); L-C is 40 % but has 4 returns (not flagged).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from rma.extensions import db
from rma.models import Customer, ProductModel, Rma, RmaItem, Shipment, Unit
from tests.conftest import count_queries

FEB = datetime(2026, 2, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
MAR = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)


def _units(model_id, customer_id, lot, shipped_on, n, prefix) -> list[int]:
    rows = [{"serial": f"{prefix}{k:06d}", "model_id": model_id, "customer_id": customer_id,
             "lot": lot, "shipped_on": shipped_on, "status": "in_service"} for k in range(n)]
    db.session.execute(insert(Unit), rows)
    return list(db.session.scalars(select(Unit.id).where(Unit.lot == lot,
                                                         Unit.model_id == model_id)
                                   .order_by(Unit.id)))


class _Rmas:
    def __init__(self, customer_id):
        self.customer_id, self.count = customer_id, 0

    def add(self, submitted_at, items):
        """``items``: (unit_id, status, cause, decision, delivered_after_hours|None)."""
        self.count += 1
        rma = Rma(number=f"RMA-2026-{self.count:06d}", customer_id=self.customer_id,
                  contact_name="张伟", contact_phone="+86 138", contact_email="a@a.example",
                  ship_to="上海", submitted_at=submitted_at)
        db.session.add(rma)
        db.session.flush()
        for line_no, (unit_id, status, cause, decision, hours) in enumerate(items, 1):
            started = submitted_at + timedelta(hours=2) if hours is not None else None
            item = RmaItem(rma_id=rma.id, line_no=line_no, unit_id=unit_id,
                           serial=f"S{unit_id}", fault_description="按键失灵", status=status,
                           cause=cause, decision=decision, clock_started_at=started,
                           due_at=started + timedelta(hours=72) if started else None)
            db.session.add(item)
            if hours is not None:
                db.session.flush()
                db.session.add(Shipment(item_id=item.id, kind="replacement", unit_id=unit_id,
                                        carrier="SF", tracking_number=f"SF{item.id}",
                                        shipped_at=started,
                                        delivered_at=started + timedelta(hours=hours)))


def build_world(app, make_model, make_customer, extra: int = 0) -> dict:
    tk3, tk5 = make_model("TK3"), make_model("TK5", life_months=60)
    contract = make_customer("华东示范银行")
    with app.app_context():
        db.session.get(ProductModel, tk3).unit_cost = Decimal("35.00")
        db.session.get(ProductModel, tk5).unit_cost = Decimal("55.00")
        customer_id = db.session.scalar(select(Customer.id).where(
            Customer.contract_number == contract))
        la = _units(tk3, customer_id, "L-A", date(2025, 1, 15), 1000, "TKA")
        lb = _units(tk3, customer_id, "L-B", date(2025, 3, 31), 3000, "TKB")
        lc = _units(tk3, customer_id, "L-C", date(2025, 6, 1), 10, "TKC")
        ls = _units(tk5, customer_id, "<script>", date(2025, 2, 10), 100, "TKS")
        rmas = _Rmas(customer_id)
        for when, units in ((FEB, la[:20]), (MAR, la[20:40])):
            items = []
            for k, unit_id in enumerate(units):
                if k < 15:
                    late = when == FEB and k >= 12  # 3 of February's 15 arrive late
                    items.append((unit_id, "closed", "quality_defect", "free",
                                  80 if late else 48))
                else:
                    items.append((unit_id, "closed", "misuse_drop", "paid", None))
            rmas.add(when, items)
        rmas.add(MAR, [(la[40], "rejected", None, None, None)])
        rmas.add(MAR, [(u, "submitted", None, None, None) for u in lb[:20]]
                 + [(u, "closed", "no_fault_found", "return_unit", None) for u in lc[:4]]
                 + [(u, "closed", "quality_defect", "free", 24) for u in ls[:2]])
        rmas.add(datetime(2025, 11, 30, 15, 59, tzinfo=UTC),  # 23:59 Nov 30 China: outside
                 [(la[41], "closed", "quality_defect", "free", None)])
        if extra:
            more = _units(tk3, customer_id, "L-X", date(2025, 5, 5), extra, "TKX")
            rmas.add(MAR, [(u, "closed", "quality_defect", "free", 30) for u in more])
        db.session.commit()
    return {"tk3": tk3, "tk5": tk5, "contract": contract}


@pytest.fixture
def world(app, make_model, make_customer):
    return build_world(app, make_model, make_customer)


def _board(app, **kwargs):
    from rma import clock
    from rma.services import analytics

    with app.test_request_context(headers={"Accept-Language": "en"}):
        filters = analytics.default_filters(clock.today(), **kwargs)
        return analytics.dashboard(filters, clock.now())


def test_issue7_default_range_is_the_last_twelve_months(app):
    from rma.services import analytics

    assert analytics.default_filters(date(2026, 11, 25)) == analytics.Filters(
        date(2025, 12, 1), date(2026, 11, 25), None)


def test_issue7_lot_with_40_returns_of_1000_units_shows_4_0_percent(app, world):
    board = _board(app)
    lots = {(r.model_code, r.lot): r for r in board.lots}
    assert lots["TK3", "L-A"].shipped == 1000
    assert lots["TK3", "L-A"].returns == 40  # the rejected item and November's do not count
    assert lots["TK3", "L-A"].rate == Decimal("4.0")
    assert lots["TK3", "L-B"].rate == Decimal("0.7")
    assert lots["TK3", "L-C"].rate == Decimal("40.0")
    assert lots["TK5", "<script>"].rate == Decimal("2.0")
    models = {r.code: r for r in board.models}
    assert (models["TK3"].shipped, models["TK3"].returns, models["TK3"].rate) == \
        (4010, 64, Decimal("1.6"))
    assert (models["TK5"].shipped, models["TK5"].returns, models["TK5"].rate) == \
        (100, 2, Decimal("2.0"))


def test_issue7_lot_flagged_at_twice_its_model_rate_with_five_returns(app, world):
    board = _board(app)
    assert [(r.model_code, r.lot) for r in board.flagged] == [("TK3", "L-A")]
    assert board.lots[0].lot == "L-A"  # flagged first
    assert {r.code: r.flagged_lots for r in board.models} == {"TK3": 1, "TK5": 0}
    assert board.tables["flagged-lots"].rows == (
        ("TK3", "L-A", 1000, 40, Decimal("4.0"), Decimal("1.6")),)


def test_issue7_lot_not_flagged_when_the_setting_asks_for_more(app, world):
    from rma import clock
    from rma.policy import current_policy
    from rma.services import analytics

    with app.test_request_context():
        policy = current_policy().with_overrides(lot_flag_ratio="2.6")  # 4.0 < 2.6 × 1.6
        board = analytics.dashboard(analytics.default_filters(clock.today()), clock.now(),
                                    policy)
    assert board.flagged == []


def test_issue7_returns_per_shipment_month(app, world):
    months = {r.month: r for r in _board(app).shipment_months}
    assert (months["2025-01"].shipped, months["2025-01"].returns, months["2025-01"].rate) \
        == (1000, 40, Decimal("4.0"))
    assert (months["2025-03"].shipped, months["2025-03"].returns) == (3000, 20)
    assert (months["2025-02"].shipped, months["2025-02"].returns) == (100, 2)


def test_issue7_cause_mix_sums_to_the_returns(app, world):
    board = _board(app)
    causes = {c: n for c, n, _share in board.causes}
    assert causes == {"quality_defect": 32, "misuse_drop": 10, "no_fault_found": 4,
                      "not_inspected": 20}
    assert sum(causes.values()) == board.total_returns == 66
    shares = {c: s for c, _n, s in board.causes}
    assert shares["quality_defect"] == Decimal("48.5")


def test_issue7_months_of_service_histogram(app, world):
    bars = dict(_board(app).months_of_service)
    assert bars["12\u201317"] == 42  # L-A (13 and 14 months) + TK5 (13)
    assert bars["9\u201311"] == 24  # L-B (11: reported the 20th, shipped the 31st) + L-C (9)
    assert sum(bars.values()) == 66


def test_issue7_months_of_service_in_sql_follows_the_month_rule(app, make_model,
                                                                 make_customer):
    from rma.services.analytics import months_of_service_sql
    from warranty.analytics import months_of_service

    cases = [("2024-01-31", "2024-02-29"), ("2024-01-31", "2024-03-01"),
             ("2026-01-15", "2026-02-14"), ("2026-01-15", "2026-02-15"),
             ("2023-05-15", "2026-05-14"), ("2025-12-31", "2026-01-01")]
    with app.app_context():
        for shipped, reported in cases:
            s, r = date.fromisoformat(shipped), date.fromisoformat(reported)
            got = db.session.scalar(select(months_of_service_sql(s, r)))
            assert got == months_of_service(s, r), (shipped, reported)


def test_issue7_warranty_cost_is_free_replacements_times_unit_cost(app, world):
    board = _board(app)
    assert [(r.key, r.free_replacements, r.cost) for r in board.cost_by_month] == [
        ("2026-02", 15, Decimal("525.00")), ("2026-03", 17, Decimal("635.00"))]
    assert [(r.key, r.free_replacements, r.cost) for r in board.cost_by_model] == [
        ("TK3", 30, Decimal("1050.00")), ("TK5", 2, Decimal("110.00"))]


def test_issue7_72_hour_trend_per_month(app, world):
    trend = {f.month: f for f in _board(app).compliance}
    assert (trend["2026-02"].started, trend["2026-02"].within_target,
            trend["2026-02"].share_within) == (15, 12, 0.8)
    assert (trend["2026-03"].started, trend["2026-03"].within_target) == (17, 17)
    rows = {row[0]: row for row in _board(app).tables["compliance"].rows}
    assert rows["2026-02"][4] == Decimal("80.0")


def test_issue7_filters_by_model_and_date(app, world):
    from rma.services import analytics

    board = _board(app, model_id=world["tk5"])
    assert [r.code for r in board.models] == ["TK5"]
    assert board.total_returns == 2
    assert {r.lot for r in board.lots} == {"<script>"}
    with app.test_request_context():
        from rma import clock

        feb = analytics.dashboard(analytics.Filters(date(2026, 2, 1), date(2026, 2, 28)),
                                  clock.now())
        assert feb.total_returns == 20
        with pytest.raises(analytics.ValidationError) as refused:
            analytics.check_filters(analytics.Filters(date(2026, 3, 1), date(2026, 2, 1)))
        assert refused.value.field == "date_to"


def test_issue7_query_count_does_not_grow_with_the_data(app, make_model, make_customer):
    build_world(app, make_model, make_customer, extra=0)
    with count_queries(app) as small:
        _board(app)
    with app.app_context():
        customer_id = db.session.scalar(select(Customer.id))
        tk3 = db.session.scalar(select(ProductModel.id).where(ProductModel.code == "TK3"))
        more = _units(tk3, customer_id, "L-Y", date(2025, 7, 7), 300, "TKY")
        rmas = _Rmas(customer_id)
        rmas.count = 100
        rmas.add(MAR, [(u, "closed", "quality_defect", "free", 30) for u in more[:60]])
        db.session.commit()
    with count_queries(app) as large:
        _board(app)
    assert len(small) == len(large) <= 8


# -- the page ---------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["manager", "admin", "support", "finance"])
def test_issue7_staff_roles_see_the_dashboard(app, world, login, role):
    client = login(role)
    response = client.get("/staff/analytics/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="nav-analytics"' in page
    assert 'id="section-flagged-lots"' in page


@pytest.mark.parametrize("role", ["customer", "warehouse"])
def test_issue7_other_roles_are_refused(app, world, login, role):
    client = login(role, contract=world["contract"] if role == "customer" else None)
    assert client.get("/staff/analytics/").status_code == 403
    assert client.get("/staff/analytics/?export=by-lot&format=csv").status_code == 403


def test_issue7_anonymous_visitors_are_sent_to_log_in(client, world):
    assert client.get("/staff/analytics/").status_code == 302


def test_issue7_page_shows_every_chart_beside_its_table_and_escapes_lots(app, world, login):
    import xml.etree.ElementTree as ET

    page = login("manager").get("/staff/analytics/").get_data(as_text=True)
    assert "<script>" not in page.split("<main>", 1)[1].replace("<script src", "")
    assert "&lt;script&gt;" in page
    for key in ("by-model", "by-lot", "by-shipment-month", "causes", "months-of-service",
                "cost-by-month", "cost-by-model", "compliance"):
        section = page.split(f'id="section-{key}"', 1)[1].split("</section>", 1)[0]
        assert f'id="table-{key}"' in section, key
        svg = section.split('<figure class="chart-box"', 1)[1].split(">", 1)[1]
        svg = svg.split("</figure>", 1)[0]
        ET.fromstring(svg)  # noqa: S314 - valid XML (our own SVG)
        assert 'role="img"' in svg
    flagged = page.split('id="section-flagged-lots"', 1)[1].split("</section>", 1)[0]
    assert "L-A" in flagged and "4.0" in flagged
    assert page.index('id="section-flagged-lots"') < page.index('id="section-by-model"')


def test_issue7_csv_export_of_a_table(app, world, login):
    client = login("finance")
    response = client.get("/staff/analytics/?export=by-lot&format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "by-lot-2026-11-25.csv" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0] == ["Model", "Lot", "Units shipped", "Returns", "Rate (%)",
                       "Model rate (%)", "Flagged"]
    assert rows[1] == ["TK3", "L-A", "1000", "40", "4.0", "1.6", "yes"]
    assert len(rows) == 1 + 4
    cost = client.get("/staff/analytics/?export=cost-by-model&format=xlsx&model="
                      f"{world['tk5']}")
    assert cost.status_code == 200 and cost.data[:2] == b"PK"


@pytest.mark.parametrize("query", ["export=nope&format=csv", "export=by-lot&format=pdf"])
def test_issue7_unknown_export_is_404(app, world, login, query):
    assert login("manager").get(f"/staff/analytics/?{query}").status_code == 404


def test_issue7_inverted_range_is_shown_beside_the_field(app, world, login):
    response = login("manager").get("/staff/analytics/?date_from=2026-03-01&date_to=2026-02-01")
    assert response.status_code == 200
    assert "The end is before the start." in response.get_data(as_text=True)


# -- unit cost: admin form and CLI --------------------------------------------------------
def test_issue7_admin_sets_a_models_unit_cost(app, login):
    client = login("admin")
    response = client.post("/admin/models/new", data={
        "code": "TK9", "name": "Token 9", "kind": "hardware", "life_months": 36,
        "basis": "ship", "replacement_price": "80.00", "unit_cost": "35.50"})
    assert response.status_code == 302
    with app.app_context():
        model = db.session.scalar(select(ProductModel).where(ProductModel.code == "TK9"))
        assert model.unit_cost == Decimal("35.50")
        model_id = model.id
    page = client.get(f"/admin/models/{model_id}").get_data(as_text=True)
    assert 'name="unit_cost"' in page and "35.50" in page
    response = client.post(f"/admin/models/{model_id}", data={
        "code": "TK9", "name": "Token 9", "kind": "hardware", "life_months": 36,
        "basis": "ship", "replacement_price": "80.00", "unit_cost": "-1"})
    assert response.status_code == 200  # refused beside the field, nothing saved
    with app.app_context():
        assert db.session.get(ProductModel, model_id).unit_cost == Decimal("35.50")
    client.post(f"/admin/models/{model_id}", data={
        "code": "TK9", "name": "Token 9", "kind": "hardware", "life_months": 36,
        "basis": "ship", "replacement_price": "80.00", "unit_cost": "40"})
    with app.app_context():
        from rma.models import AuditEvent

        assert db.session.get(ProductModel, model_id).unit_cost == Decimal("40.00")
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "product_model.updated")).one()
        assert event.after["unit_cost"] == "40.00"


def test_issue7_cli_add_model_with_unit_cost(app, runner):
    result = runner.invoke(args=["add-model", "TK7", "--name", "Token 7", "--kind",
                                 "hardware", "--life-months", "36", "--unit-cost", "12.30"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(ProductModel.unit_cost).where(
            ProductModel.code == "TK7")) == Decimal("12.30")
    bad = runner.invoke(args=["add-model", "TK8", "--name", "T", "--kind", "hardware",
                              "--life-months", "36", "--unit-cost", "x"])
    assert bad.exit_code != 0
