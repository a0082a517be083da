"""``gunicorn --logger-class rma.gunicorn_logger.JsonLogger``: gunicorn's own error log
(start, stop, worker boots and deaths) in the app's JSON shape when ``RMA_LOG_FORMAT`` is
``json``, its usual text otherwise. Kept apart from ``rma.logs`` so the app does not
import gunicorn."""

from __future__ import annotations

import os

from gunicorn.glogging import Logger

from rma.logs import JsonFormatter


class JsonLogger(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        if os.environ.get("RMA_LOG_FORMAT", "text").strip().lower() == "json":
            for handler in self.error_log.handlers + self.access_log.handlers:
                handler.setFormatter(JsonFormatter())
