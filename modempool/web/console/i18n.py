"""The console's languages: English and Simplified Chinese from Babel message catalogs.

Templates mark text with `_()`; `scripts/console_messages.sh` extracts it into
`locale/messages.pot`, the translations live in `locale/zh_CN/LC_MESSAGES/messages.po`, and
the compiled `.mo` beside it is package data. The language is the `mp_lang` cookie set by the
switch on every page, else the browser's Accept-Language, else English.
"""

from __future__ import annotations

from datetime import tzinfo
from functools import lru_cache
from pathlib import Path

from babel.support import NullTranslations, Translations
from jinja2 import Environment, PackageLoader, select_autoescape

from modempool.when import local_time

HERE = Path(__file__).parent
LANGUAGES = {"en": "English", "zh_CN": "中文"}
COOKIE = "mp_lang"


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The language for a request: the switch's cookie, else the first Accept-Language entry
    we have (by q), else English."""
    if cookie in LANGUAGES:
        return cookie
    wanted: list[tuple[float, int, str]] = []
    for index, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        wanted.append((-quality, index, tag.strip().lower()))
    for _, _, tag in sorted(wanted):
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return "en"


@lru_cache(maxsize=None)
def environment(language: str, tz: tzinfo | None = None) -> Environment:
    """A Jinja2 environment (autoescaping) with `language`'s catalog installed; its filter
    `local_time` shows every time in `tz` (`[pool] timezone`), as the CLI does."""
    env = Environment(loader=PackageLoader("modempool.web.console", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(catalog(language), newstyle=True)
    env.globals["LANGUAGES"] = LANGUAGES
    from modempool.web.console.errors import describe

    env.filters["error"] = lambda error: describe(error, language)   # a rejected row's reason
    env.filters["local_time"] = lambda moment: local_time(moment, tz)
    return env


@lru_cache(maxsize=None)
def catalog(language: str) -> NullTranslations:
    if language == "en":
        return NullTranslations()
    return Translations.load(str(HERE / "locale"), [language], domain="messages")


def gettext(language: str):
    """`_` for Python code (errors the console itself words): `_(text, name=value)`."""
    lookup = catalog(language).gettext
    return lambda text, **values: lookup(text) % values if values else lookup(text)
