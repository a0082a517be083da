"""The service commitment as code: the pure core of the RMA/warranty product.

Standard library (plus ``tzdata``) only, and free of the clock: every function takes
the date or instant it judges as an argument. Rules cite their ids in SPEC.md.
"""

from .contract import (
    TERM_KINDS,
    ContractStatus,
    Term,
    contract_status,
    project_term,
    renewal_term,
    renewal_term_from,
)
from .coverage import (
    Basis,
    BasisUsed,
    Coverage,
    ReplacementPolicy,
    UnitFacts,
    chain_serials,
    chain_units,
    coverage,
)
from .decision import Cause, Decision, Outcome, decide, report_date
from .errors import (
    ContractError,
    FactError,
    NaiveDatetimeError,
    PolicyError,
    SerialError,
    UnknownCauseError,
    WarrantyError,
)
from .months import add_months, last_covered_day
from .policy import (
    CLOCK_TARGETS,
    CLOCKS,
    DEFAULT_ESCALATION_LADDER,
    DEFAULT_POLICY,
    PRIORITIES,
    REPLACEMENT_POLICIES,
    ROLES,
    Policy,
)
from .serials import is_valid_serial, normalize_serial

__all__ = [
    "CLOCKS",
    "CLOCK_TARGETS",
    "DEFAULT_ESCALATION_LADDER",
    "DEFAULT_POLICY",
    "PRIORITIES",
    "REPLACEMENT_POLICIES",
    "ROLES",
    "TERM_KINDS",
    "Basis",
    "BasisUsed",
    "Cause",
    "ContractError",
    "ContractStatus",
    "Coverage",
    "Decision",
    "FactError",
    "NaiveDatetimeError",
    "Outcome",
    "Policy",
    "PolicyError",
    "ReplacementPolicy",
    "SerialError",
    "Term",
    "UnitFacts",
    "UnknownCauseError",
    "WarrantyError",
    "add_months",
    "chain_serials",
    "chain_units",
    "contract_status",
    "coverage",
    "decide",
    "is_valid_serial",
    "last_covered_day",
    "normalize_serial",
    "project_term",
    "renewal_term",
    "renewal_term_from",
    "report_date",
]
