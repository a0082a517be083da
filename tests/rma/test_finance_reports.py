"""Finance reports (issue 5, point 6) on rows inserted directly: open quotes,
receivables and their ageing at the bucket edges, payments per month, revenue per
product model; each table is one query."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from rma.extensions import db
from rma.models import (
    Customer,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    Quote,
    QuoteKind,
    QuoteStatus,
    Rma,
)
from rma.services import ValidationError
from rma.services.finance_reports import (
    ageing_summary,
    ageing_table,
    open_quotes_table,
    payments_by_month_table,
    receivables_table,
    revenue_by_model_table,
)
from tests.conftest import count_queries
from warranty.money import line_amounts, totals

TODAY = date(2026, 11, 25)
D = Decimal


@pytest.fixture
def world(ctx, make_model, make_customer):
    tk3 = make_model("TK3", price="80.00")
    tk5 = make_model("TK5", price="120.00")
    contract_a = make_customer("华东示范银行")
    contract_b = make_customer("Beta Bank", "2025-01-05")
    customers = {c.contract_number: c.id for c in db.session.query(Customer)}
    return {"tk3": tk3, "tk5": tk5, "a": customers[contract_a], "b": customers[contract_b]}


def add_invoice(world, issued_on: date, lines, *, customer="a", paid="0.00",
                credited="0.00", status=InvoiceStatus.UNPAID, kind=InvoiceKind.INVOICE,
                credits: Invoice | None = None) -> Invoice:
    """``lines``: (kind, model key or None, quantity, unit price)."""
    count = db.session.query(Invoice).filter_by(kind=kind).count() + 1
    prefix = "INV" if kind == InvoiceKind.INVOICE else "CN"
    amounts = [line_amounts(qty, D(price), D("0.13")) for _k, _m, qty, price in lines]
    sums = totals(amounts)
    invoice = Invoice(
        number=f"{prefix}-{issued_on.year}-{count:06d}", kind=kind, year=issued_on.year,
        sequence=count, customer_id=world[customer], status=status, issued_on=issued_on,
        due_on=issued_on + timedelta(days=30), billing_name="x", contract_number="SC-1",
        net_total=sums.net, vat_total=sums.vat, gross_total=sums.gross, paid_total=D(paid),
        credited_total=D(credited), credited_invoice=credits)
    for no, ((line_kind, model, qty, _price), amount) in enumerate(
            zip(lines, amounts, strict=True), start=1):
        invoice.lines.append(InvoiceLine(
            line_no=no, kind=line_kind, model_id=world[model] if model else None,
            description=line_kind, quantity=qty, unit_price=amount.unit_price,
            vat_rate=amount.vat_rate, net=amount.net, vat=amount.vat, gross=amount.gross))
    db.session.add(invoice)
    db.session.commit()
    return invoice


ONE_TK3 = [("replacement", "tk3", 1, "1234.50")]  # gross 1,394.99


def test_ageing_buckets_at_their_edges(app, world):
    edges = {0: "0-30", 30: "0-30", 31: "31-60", 60: "31-60", 61: "61-90", 90: "61-90",
             91: "90+", 400: "90+"}
    for days in edges:
        add_invoice(world, TODAY - timedelta(days=days), ONE_TK3)
    ahead = add_invoice(world, TODAY + timedelta(days=2), ONE_TK3)  # counts as 0 days
    table = receivables_table(TODAY)
    assert table.key == "receivables" and len(table.columns) == 9
    ages = {row[2]: (row[4], row[5]) for row in table.rows}
    assert ages == {TODAY - timedelta(days=days): (days, bucket)
                    for days, bucket in edges.items()} | {ahead.issued_on: (0, "0-30")}
    assert [row[2] for row in table.rows] == sorted(ages)  # oldest first
    assert ageing_summary(TODAY) == [("0-30", 3, D("4184.97")), ("31-60", 2, D("2789.98")),
                                     ("61-90", 2, D("2789.98")), ("90+", 2, D("2789.98"))]


def test_outstanding_is_gross_minus_paid_minus_credited(app, world):
    partly = add_invoice(world, TODAY - timedelta(days=10), ONE_TK3, paid="500.00",
                         credited="100.00", status=InvoiceStatus.PARTIALLY_PAID)
    add_invoice(world, TODAY - timedelta(days=40), ONE_TK3, customer="b")
    # Not receivables: paid, credited, and the credit note itself.
    add_invoice(world, TODAY - timedelta(days=5), ONE_TK3, paid="1394.99",
                status=InvoiceStatus.PAID)
    credited = add_invoice(world, TODAY - timedelta(days=5), ONE_TK3, credited="1394.99",
                           status=InvoiceStatus.CREDITED)
    add_invoice(world, TODAY - timedelta(days=4), [("credit", None, 1, "1234.50")],
                kind=InvoiceKind.CREDIT_NOTE, status=InvoiceStatus.ISSUED, credits=credited)
    rows = {row[0]: row for row in receivables_table(TODAY).rows}
    assert set(rows) == {partly.number, "INV-2026-000002"}
    number, customer, issued, due, days, bucket, gross, paid, outstanding = rows[partly.number]
    assert (customer, issued, due, days, bucket) == (
        "华东示范银行", TODAY - timedelta(days=10), TODAY + timedelta(days=20), 10, "0-30")
    assert (gross, paid, outstanding) == (D("1394.99"), D("500.00"), D("794.99"))
    assert all(isinstance(v, Decimal) for v in (gross, paid, outstanding))
    assert rows["INV-2026-000002"][1] == "Beta Bank"
    assert ageing_summary(TODAY) == [("0-30", 1, D("794.99")), ("31-60", 1, D("1394.99")),
                                     ("61-90", 0, D("0.00")), ("90+", 0, D("0.00"))]
    total = ageing_table(TODAY).rows[-1]
    assert total[1:] == (2, D("2189.98"))


def test_payments_by_month_sums_per_month_and_method(app, world):
    invoice = add_invoice(world, date(2025, 11, 1), [("replacement", "tk3", 100, "1000.00")])
    for received_on, amount, method in [
        (date(2026, 11, 3), "100.00", PaymentMethod.BANK_TRANSFER),
        (date(2026, 11, 20), "0.10", PaymentMethod.CASH),
        (date(2026, 11, 25), "0.20", PaymentMethod.CASH),
        (date(2026, 10, 31), "2000.05", PaymentMethod.CHEQUE),
        (date(2026, 10, 1), "0.01", PaymentMethod.ONLINE),
        (date(2025, 12, 1), "5.00", PaymentMethod.ONLINE),  # first month of 12
        (date(2025, 11, 30), "7.00", PaymentMethod.ONLINE),  # 13 months back: left out
    ]:
        db.session.add(Payment(invoice_id=invoice.id, amount=D(amount), received_on=received_on,
                               method=method))
    db.session.commit()
    table = payments_by_month_table(TODAY)
    assert table.columns[0] == "Month" and table.columns[-1] == "Total (CNY)"
    assert [row[0] for row in table.rows] == [
        "2025-12", *(f"2026-{m:02d}" for m in range(1, 12))]
    rows = {row[0]: row for row in table.rows}
    # Month, count, bank transfer, cheque, cash, online, total.
    assert rows["2026-11"] == ("2026-11", 3, D("100.00"), D("0.00"), D("0.30"), D("0.00"),
                               D("100.30"))
    assert rows["2026-10"] == ("2026-10", 2, D("0.00"), D("2000.05"), D("0.00"), D("0.01"),
                               D("2000.06"))
    assert rows["2025-12"][1] == 1 and rows["2025-12"][-1] == D("5.00")
    assert rows["2026-06"] == ("2026-06", 0, *[D("0.00")] * 5)
    three = payments_by_month_table(TODAY, months=3)
    assert [row[0] for row in three.rows] == ["2026-09", "2026-10", "2026-11"]
    january = payments_by_month_table(date(2026, 1, 15), months=2)
    assert [row[0] for row in january.rows] == ["2025-12", "2026-01"]
    with pytest.raises(ValidationError):
        payments_by_month_table(TODAY, months=0)


def test_revenue_per_model_counts_replacement_lines_of_invoices_in_range(app, world):
    start, end = date(2026, 10, 1), date(2026, 10, 31)
    add_invoice(world, start, [("replacement", "tk3", 1, "80.00"),
                               ("shipping", None, 1, "20.00")])
    add_invoice(world, end, [("replacement", "tk3", 2, "80.00"),
                             ("replacement", "tk5", 1, "120.00")], status=InvoiceStatus.PAID,
                paid="305.10")
    add_invoice(world, end + timedelta(days=1), [("replacement", "tk5", 5, "120.00")])
    first = add_invoice(world, start - timedelta(days=1), [("replacement", "tk3", 9, "80.00")])
    add_invoice(world, date(2026, 10, 15), [("replacement", "tk3", 1, "80.00")],
                kind=InvoiceKind.CREDIT_NOTE, status=InvoiceStatus.ISSUED, credits=first)
    table = revenue_by_model_table(start, end)
    assert table.columns == ("Model", "Name", "Units", "Net (CNY)", "VAT (CNY)",
                             "Total (CNY)")
    assert table.rows == (
        ("TK3", "TK3 token", 3, D("240.00"), D("31.20"), D("271.20")),
        ("TK5", "TK5 token", 1, D("120.00"), D("15.60"), D("135.60")),
    )
    assert revenue_by_model_table(date(2027, 1, 1), date(2027, 12, 31)).rows == ()
    with pytest.raises(ValidationError):
        revenue_by_model_table(end, start)


def test_open_quotes_lists_open_ones_soonest_first(app, world):
    rma = Rma(number="RMA-2026-00042", customer_id=world["a"], contact_name="张伟",
              contact_phone="1", contact_email="a@example.com", ship_to="上海")
    db.session.add(rma)
    db.session.flush()

    def quote(number, status, valid_until, kind=QuoteKind.REPLACEMENT, gross="90.40"):
        db.session.add(Quote(
            number=number, kind=kind, customer_id=world["a"],
            rma_id=rma.id if kind == QuoteKind.REPLACEMENT else None, status=status,
            issued_on=valid_until - timedelta(days=30), valid_until=valid_until,
            net_total=D("80.00"), vat_total=D("10.40"), gross_total=D(gross)))

    quote("Q-2026-000001", QuoteStatus.OPEN, TODAY + timedelta(days=10))
    quote("Q-2026-000002", QuoteStatus.OPEN, TODAY - timedelta(days=1),
          kind=QuoteKind.SUPPORT, gross="11300.00")
    quote("Q-2026-000003", QuoteStatus.ACCEPTED, TODAY)
    quote("Q-2026-000004", QuoteStatus.SUPERSEDED, TODAY)
    db.session.commit()
    table = open_quotes_table(TODAY)
    assert table.key == "open-quotes"
    assert table.rows == (
        ("Q-2026-000002", "Paid support", "华东示范银行", "", TODAY - timedelta(days=31),
         TODAY - timedelta(days=1), -1, D("11300.00")),
        ("Q-2026-000001", "Replacement", "华东示范银行", "RMA-2026-00042",
         TODAY - timedelta(days=20), TODAY + timedelta(days=10), 10, D("90.40")),
    )


def test_every_table_is_one_query(app, world):
    for days in range(0, 200, 7):
        invoice = add_invoice(world, TODAY - timedelta(days=days),
                              ONE_TK3 + [("replacement", "tk5", 2, "120.00")])
        db.session.add(Payment(invoice_id=invoice.id, amount=D("10.00"),
                               received_on=TODAY - timedelta(days=days),
                               method=PaymentMethod.CASH))
    db.session.commit()
    db.session.expire_all()
    calls = [
        lambda: open_quotes_table(TODAY),
        lambda: receivables_table(TODAY),
        lambda: ageing_summary(TODAY),
        lambda: ageing_table(TODAY),
        lambda: payments_by_month_table(TODAY),
        lambda: revenue_by_model_table(TODAY - timedelta(days=365), TODAY),
    ]
    for call in calls:
        with count_queries(app) as statements:
            table = call()
        assert len(statements) == 1, statements
        assert table
    units = {row[0]: row[2] for row in revenue_by_model_table(TODAY - timedelta(days=365),
                                                              TODAY).rows}
    assert units == {"TK3": 29, "TK5": 58}


def test_titles_and_headers_follow_the_language(app, world):
    from flask_babel import force_locale

    with force_locale("zh_CN"):
        zh = receivables_table(TODAY)
    english = receivables_table(TODAY)
    assert english.columns[1] == "Customer"
    assert zh.title and zh.columns[0] != "" and len(zh.columns) == len(english.columns)
