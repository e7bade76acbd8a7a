"""The library's refusals in the console's language.

A `PoolError` says what is wrong in English (as the CLI and the HTTP API show it) and carries a
stable `code` with the values its message is made of (`params`). In English the console shows
the library's own words; in another language it words the error again from the catalog, by
code. An error whose code has no entry here is shown in English, as before.
"""

from __future__ import annotations

from typing import Any

from modempool.web.console import i18n
from modempool.web.console.words import N_

MESSAGES: dict[str, str] = {
    # numbers and recipients
    "number_empty": N_("The phone number is empty."),
    "number_bad_start": N_("%(number)s is not a phone number: it must begin with a digit, + or (."),
    "number_unreadable": N_("%(number)s is not a phone number."),
    "number_invalid": N_("%(number)s is not a valid phone number."),
    "no_recipient": N_("Give at least one recipient."),
    "contact_name_not_found": N_("%(name)s: no contact has this name (a group is written @name)."),
    "contact_not_found": N_("There is no contact with the number %(number)s."),
    "group_not_found": N_("There is no group named %(name)s."),
    "group_name_missing": N_("Give the group a name."),
    "group_exists": N_("There is already a group named %(name)s."),
    "birthday_invalid": N_("%(birthday)s is not a date like 1990-05-17 or 05-17"),
    "blacklisted": N_("%(number)s is on the blacklist: it never gets a message."),
    "opted_out": N_("%(number)s has opted out (退订) and does not get direct messages."),
    "refused_many": N_("%(count)s recipients are refused:"),
    # the text
    "text_empty": N_("Write the message."),
    "text_not_utf8": N_("The text has bytes that are not UTF-8."),
    "text_unencodable": N_("The text cannot be sent as an SMS."),
    "text_too_long": N_("%(characters)s characters need %(parts)s SMS parts; at most %(max_parts)s "
                        "are allowed."),
    "time_unreadable": N_("%(text)s is not a time: use HH:MM, +10m, +2h or YYYY-MM-DD HH:MM."),
    # accounts, SIMs, quotas
    "may_not_send": N_("Your account may look but not send."),
    "may_not_change": N_("Your account may look but not change messages."),
    "may_not_change_contacts": N_("Your account may look at contacts but not change them."),
    "may_not_change_groups": N_("Your account may look at groups but not change them."),
    "may_not_change_optouts": N_("Your account may look at opt-outs and the blacklist but not "
                                 "change them."),
    "may_not_lift_optouts": N_("Your account may add opt-outs and blacklist entries but not "
                               "remove them; an admin does."),
    "may_not_change_autoreplies": N_("Your account may look at the auto-reply rules but not "
                                     "change them; an admin does."),
    "may_not_run_campaign": N_("Your account may look at campaign %(id)s but not run it."),
    "sim_not_allowed": N_("Your account may not send through %(sims)s (its SIMs: %(allowed)s)."),
    "unknown_sim": N_("There is no SIM named %(sims)s (the bank has: %(configured)s)."),
    "quota_per_minute": N_("Your account may queue %(limit)s messages a minute: %(used)s were "
                           "queued in the last minute and %(count)s more asked. Nothing was queued."),
    "quota_per_day": N_("Your account may queue %(limit)s messages a day: %(used)s were queued "
                        "today and %(count)s more asked. Nothing was queued."),
    # messages
    "cancel_not_queued": N_("Message %(id)s is %(state)s: only queued messages can be cancelled."),
    "retry_not_final": N_("Message %(id)s is %(state)s: only failed, expired or ambiguous messages "
                          "can be retried."),
    # campaigns and their templates
    "template_missing": N_("Write the message template."),
    "template_malformed": N_("The template has an unmatched brace (write a literal brace as {{ or }})."),
    "template_unnamed_field": N_("Template fields need names, like {name}; {} or {0} is not allowed."),
    "template_name_missing": N_("Give the template a name."),
    "template_exists": N_("There is already a template named %(name)s."),
    "template_not_found": N_("There is no saved template %(id)s."),
    "campaign_no_recipients": N_("Choose recipients: numbers or groups."),
    "campaign_kind": N_("A campaign is a notice or marketing."),
    "campaign_not_found": N_("There is no campaign %(id)s."),
    "campaign_cancelled": N_("Campaign %(id)s was cancelled; run it again as a new campaign."),
    "campaign_state": N_("Campaign %(id)s is %(state)s; it cannot become %(wanted)s."),
    "campaign_sensitive": N_("Campaign %(id)s contains sensitive words: %(words)s. It cannot start."),
    "campaign_problems": N_("Campaign %(id)s has %(count)s problem(s): fix them, or start it "
                            "leaving those recipients out."),
    "plan_missing_fields": N_("%(number)s lacks %(fields)s"),
    "plan_sensitive": N_("Sensitive words: %(words)s"),
    # contact files
    "upload_type": N_("%(file)s: upload a .csv, .txt or .xlsx file."),
    "upload_too_big": N_("%(file)s: %(kib)s KiB is more than the %(max_kib)s KiB allowed; split the "
                         "file."),
    "upload_empty": N_("%(file)s: the file is empty."),
    "upload_not_xlsx": N_("%(file)s: not an Excel .xlsx workbook (save it as .xlsx or .csv)."),
    "upload_not_text": N_("%(file)s: not a text file (is it an .xls or an image renamed?)."),
    "upload_encoding": N_("%(file)s: cannot be read as UTF-8 or GBK/GB18030."),
    "upload_missing": N_("Choose a file to upload."),
    "import_rejected": N_("%(count)s row(s) rejected; nothing was imported."),
    "no_number_column": N_("No column holds phone numbers (columns: %(columns)s); name one 手机, "
                           "电话, 号码 or number."),
    "mapping_target": N_("%(target)s is not a column the address book knows (use one of "
                         "%(targets)s)."),
    "mapping_column": N_("The file has no column %(column)s (columns: %(columns)s)."),
    # reading spreadsheets and text files
    "file_not_found": N_("There is no file %(file)s."),
    "file_unreadable": N_("%(file)s cannot be read: %(reason)s"),
    "encoding_unknown": N_("%(encoding)s is not an encoding modempool knows (try utf-8 or "
                           "gb18030)."),
    "file_not_in_encoding": N_("%(file)s is not %(encoding)s: byte %(byte)s cannot be read in it."),
    "xlsx_unreadable": N_("%(file)s cannot be read as an Excel .xlsx workbook (save it again as "
                          ".xlsx or .csv)."),
    "xlsx_no_sheet": N_("%(file)s has no sheet named %(sheet)s (sheets: %(sheets)s)."),
    "xlsx_too_many_rows": N_("%(file)s has more than %(max)s rows; split it."),
    "xlsx_too_many_columns": N_("%(file)s: a cell in column %(column)s; at most %(max)s "
                                "columns are read."),   # "row N:" is put before it
    "xlsx_too_big": N_("%(file)s unpacks to %(mb)s MB; at most %(max_mb)s MB are read."),
    "row_no_number": N_("no phone number"),
    "row_duplicate": N_("the same number as line %(first)s (%(number)s)"),
    "row_birthday": N_("%(birthday)s is not a date like 1990-05-17 or 05-17"),
    # auto-replies, accounts
    "autoreply_no_reply": N_("Write the reply."),
    "autoreply_no_keywords": N_("Give keywords (or a pattern) the rule answers."),
    "hours_form": N_("%(hours)s: write the hours like 09:00-18:00."),
    "account_name": N_("%(name)s: an account name is 1-64 letters, digits, _, . or -."),
    "account_role": N_("Choose admin, sender or viewer."),
    "account_exists": N_("There is already an account named %(name)s (rotate its key instead)."),
    "account_not_found": N_("There is no account named %(name)s."),
    "password_short": N_("A password needs at least %(min)s characters."),
    "account_remove_self": N_("You cannot remove the account you are signed in with."),
    # webhooks
    "webhook_url": N_("%(url)s: give an http:// or https:// URL with a host."),
    "webhook_events": N_("Unknown event(s) %(events)s; choose from %(choices)s."),
    "webhook_no_events": N_("Choose at least one event."),
    "webhook_not_found": N_("There is no webhook %(id)s."),
    # USSD (through the daemon)
    "ussd_code": N_("%(code)s is not a USSD code: use digits, * and #, such as *100#."),
    "daemon_not_running": N_("The daemon is not running; USSD goes through the daemon that owns "
                             "the modems: start it (modempool run)."),
    "ussd_no_answer": N_("USSD %(code)s on %(sim)s: no answer within %(seconds)s s (is the SIM "
                         "served by a daemon?)."),
    "ussd_failed": N_("USSD %(code)s on %(sim)s failed: %(error)s"),
    # forwarding
    "forward_exists": N_("%(number)s is already a forwarding target."),
    "forward_not_found": N_("%(number)s is not a forwarding target."),
    # the database away for a moment (spool/unavailable.py)
    "spool_unavailable": N_("The database cannot answer now; nothing was changed. Try again in "
                            "a few seconds."),
    "spool_outcome_unknown": N_("The connection to the database was lost while this was being "
                                "saved: it may have been stored. Look before you repeat it."),
}
ROW = N_("row %(row)s: %(error)s")
INVALID_ROW = N_("invalid number: %(error)s")


def describe(error: Any, language: str) -> str:
    """`error` (a PoolError, or anything with `code` and `params`, such as a rejected import
    row) in `language`; its English message when there is no wording for its code."""
    english = str(getattr(error, "reason", "") or error) if _is_row(error) else str(error)
    if language == "en":
        return english
    code, params = getattr(error, "code", ""), dict(getattr(error, "params", {}) or {})
    text = word(code, params, language)
    if text is None:
        return english
    lookup = i18n.catalog(language).gettext
    if code == "refused_many":
        text += " " + "; ".join(describe(r, language) for r in getattr(error, "refusals", []))
    if _is_row(error) and code.startswith("number_"):
        text = lookup(INVALID_ROW) % {"error": text}
    if "row" in params:
        text = lookup(ROW) % {"row": params["row"], "error": text}
    return text


def word(code: str, params: dict[str, Any], language: str) -> str | None:
    """The catalog's wording of `code` with `params` filled in, or None."""
    template = MESSAGES.get(code)
    if template is None:
        return None
    try:
        return i18n.catalog(language).gettext(template) % params
    except (KeyError, TypeError, ValueError):
        return None


def _is_row(error: Any) -> bool:
    return hasattr(error, "line") and hasattr(error, "reason")
