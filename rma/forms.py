"""Web forms (Flask-WTF: every POST form carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice as C
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

KINDS = [C("hardware", _l("Hardware")), C("software", _l("Software")),
         C("appliance", _l("Appliance"))]
BASES = [C("ship", _l("Ship date")), C("activation", _l("Activation date")),
         C("acceptance", _l("Acceptance date + 1 day"))]
ROLES = [C("customer", _l("Customer")), C("support", _l("Support engineer")),
         C("warehouse", _l("Warehouse")), C("finance", _l("Finance")),
         C("manager", _l("Manager")), C("admin", _l("Administrator"))]
LANGUAGES = [C("zh_CN", "中文"), C("en", "English")]


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])
    submit = SubmitField(_l("Log in"))


class WarrantyForm(FlaskForm):
    serials = TextAreaField(
        _l("Serial numbers"),
        validators=[DataRequired(), Length(max=50 * 40)],
        description=_l("One serial, or up to 50 pasted one per line."),
    )
    submit = SubmitField(_l("Check warranty"))


class ProductModelForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=KINDS)
    life_months = IntegerField(_l("Life and warranty (months)"),
                               validators=[InputRequired(), NumberRange(1, 240)])
    basis = SelectField(_l("Warranty starts from"), choices=BASES)
    replacement_price = DecimalField(_l("Replacement price (CNY)"), places=2,
                                     validators=[Optional(), NumberRange(min=0)])
    unit_cost = DecimalField(_l("Unit cost (CNY)"), places=2,
                             validators=[Optional(), NumberRange(min=0)],
                             description=_l("What one unit costs the vendor: the warranty "
                                            "cost of a free replacement (analytics)."))
    submit = SubmitField(_l("Save"))


class SuccessorsForm(FlaskForm):
    """The models allowed to ship as a replacement for a model (issue 4). The view sets
    ``successors.choices`` to the other models; the service checks the ids."""

    successors = SelectMultipleField(
        _l("Allowed replacement models"), coerce=int, validate_choice=False,
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
        description=_l("A spare of this model, or of a model ticked here, may ship as its "
                       "replacement."))
    submit_successors = SubmitField(_l("Save replacement models"))


class CustomerForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    address = TextAreaField(_l("Address"), validators=[Optional(), Length(max=2000)])
    accepted_on = DateField(_l("Acceptance certificate signed on"), validators=[Optional()])
    contract_months = IntegerField(_l("Project service term (months)"), default=12,
                                   validators=[InputRequired(), NumberRange(1, 240)])
    submit = SubmitField(_l("Save"))


class UserForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(), Length(max=254)])
    role = SelectField(_l("Role"), choices=ROLES)
    customer = StringField(_l("Customer contract number"), validators=[Optional(),
                                                                       Length(max=32)],
                           description=_l("Only for customer users."))
    language = SelectField(_l("Language"), choices=LANGUAGES)
    password = PasswordField(_l("Password"), validators=[Optional(), Length(max=256)],
                             description=_l("At least 10 characters. Leave empty to keep it."))
    is_active = BooleanField(_l("Active"), default=True)
    submit = SubmitField(_l("Save"))


class LanguageForm(FlaskForm):
    lang = SelectField(_l("Language"), choices=LANGUAGES)
