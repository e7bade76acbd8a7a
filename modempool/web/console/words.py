"""Words the console shows from data (message, SIM and campaign states, roles), marked here so
that `scripts/console-messages` extracts them; templates translate them with `_(state)`."""


def N_(text: str) -> str:
    return text


STATES = (N_("queued"), N_("sending"), N_("sent"), N_("delivered"), N_("failed"), N_("expired"),
          N_("cancelled"), N_("ambiguous"), N_("received"))
SIM_STATES = (N_("up"), N_("down"), N_("quarantined"), N_("unknown"), N_("starting"),
              N_("standby"), N_("locked"), N_("stopped"))
CAMPAIGN_STATES = (N_("draft"), N_("running"), N_("paused"), N_("finished"))
ROLES = (N_("admin"), N_("sender"), N_("viewer"))
