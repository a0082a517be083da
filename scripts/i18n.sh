#!/bin/sh
# Translation catalogue upkeep (Flask-Babel). Works from any directory.
#
#   scripts/i18n.sh extract   # rma/translations/messages.pot from rma/**.py and templates/**.html
#   scripts/i18n.sh update    # merge the .pot into rma/translations/zh_Hans_CN/LC_MESSAGES/messages.po
#   scripts/i18n.sh compile   # messages.po -> messages.mo (both are committed)
#
# After adding or changing a string: extract, update, translate the new entries in
# messages.po (remove any "#, fuzzy" flag once checked), compile. tests/rma/test_i18n.py
# fails until the catalogue is complete and the .mo matches the .po.
set -eu

cd "$(dirname "$0")/.."
PYBABEL="${PYBABEL:-.venv/bin/pybabel}"
DIR=rma/translations
POT="$DIR/messages.pot"
LOCALE=zh_Hans_CN  # Babel's name for zh_CN: Flask-Babel looks up str(Locale.parse("zh_CN"))

case "${1:-}" in
    extract)
        "$PYBABEL" extract -F babel.cfg -k _l -k lazy_gettext \
            --add-comments=TRANSLATORS: --project="RMA service" -o "$POT" .
        ;;
    update)
        "$PYBABEL" update -i "$POT" -d "$DIR" -l "$LOCALE" --init-missing --ignore-obsolete
        ;;
    compile)
        "$PYBABEL" compile -d "$DIR" --statistics
        ;;
    *)
        echo "usage: $0 extract|update|compile" >&2
        exit 2
        ;;
esac
