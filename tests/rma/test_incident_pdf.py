"""The final emergency response report of an on-site visit as PDF (R-I6, issue 6),
rendered from plain data and read back by extracting its text (pypdf): the Chinese
title 紧急响应报告 and the customer's name print, captions follow the document's
language, every daily brief and the final report are there, long text continues on more
pages, and equal data gives equal bytes."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import date

import pytest
from pypdf import PdfReader

from rma.documents.incident import OnsiteReportDocument, render_onsite_report
from tests.conftest import make_app

CUSTOMER = "华东示范银行股份有限公司"


@pytest.fixture
def app_ctx(tmp_path):
    """An app context (for Flask-Babel) without a database: documents need none."""
    app = make_app(f"sqlite:///{tmp_path / 'unused.sqlite3'}", tmp_path)
    with app.app_context():
        yield app


def document(**changes) -> OnsiteReportDocument:
    fields = dict(
        number="INC-2026-000042", customer_name=CUSTOMER, contract_number="SC-2026-00017",
        language="zh_CN", visit_kind="emergency", requested="2026-11-23 10:05",
        arrived="2026-11-23 15:40", ended="2026-11-25 11:30", engineer="王工程师 Wang",
        site_address="上海市浦东新区世纪大道100号\n环球金融中心 78 层",
        briefs=((date(2026, 11, 23), "更换认证服务器电源 replaced the PSU"),
                ("2026-11-24", "restored the HSM cluster; monitoring")),
        final_report="故障原因：电源损坏。Root cause: power supply failure. Service restored.",
        generated_on=date(2026, 11, 25))
    fields.update(changes)
    return OnsiteReportDocument(**fields)


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_r_i6_report_has_chinese_title_customer_briefs_and_final_report(app_ctx):
    pdf = render_onsite_report(document())
    assert pdf.startswith(b"%PDF")
    text = flat("".join(pages_text(pdf)))
    assert "紧急响应报告" in text
    assert flat(CUSTOMER) in text
    for expected in ("INC-2026-000042", "SC-2026-00017", "2026-11-2310:05",
                     "2026-11-2315:40", "2026-11-2511:30", "王工程师Wang", "上海市浦东新区",
                     "2026-11-23", "更换认证服务器电源", "2026-11-24", "restoredtheHSMcluster",
                     "Rootcause:powersupplyfailure"):
        assert expected in text, expected


def test_r_i6_english_report_has_english_title(app_ctx):
    text = flat("".join(pages_text(render_onsite_report(document(language="en")))))
    assert "Emergencyresponsereport" in text
    assert "紧急响应报告" not in text
    assert "Dailybriefs" in text and "Finalreport" in text


def test_r_c4_change_visit_has_its_own_title_and_chargeable_flag(app_ctx):
    text = flat("".join(pages_text(render_onsite_report(
        document(language="en", visit_kind="change", chargeable=True)))))
    assert "On-siteservicereport" in text
    assert "Chargeable" in text


def test_r_i6_report_without_briefs_says_so(app_ctx):
    text = flat("".join(pages_text(render_onsite_report(document(language="en", briefs=())))))
    assert "Nodailybriefwasfiled." in text


def test_r_i6_long_report_continues_on_more_pages_with_title_on_each(app_ctx):
    briefs = tuple((date(2026, 11, day), f"第{day}天 " + "检查日志 checked logs " * 60)
                   for day in range(1, 25))
    pages = pages_text(render_onsite_report(document(briefs=briefs)))
    assert len(pages) > 2
    for page in pages:
        assert "紧急响应报告" in flat(page) and "INC-2026-000042" in page
    assert "第24天" in flat(pages[-1]) or "第24天" in flat("".join(pages[-2:]))
    assert "电源损坏" in flat(pages[-1])


def test_r_i6_equal_data_gives_equal_bytes(app_ctx):
    assert render_onsite_report(document()) == render_onsite_report(document())
    assert render_onsite_report(document()) != render_onsite_report(
        replace(document(), final_report="other"))


def test_unknown_visit_kind_is_refused(app_ctx):
    with pytest.raises(ValueError, match="visit kind"):
        render_onsite_report(document(visit_kind="holiday"))
