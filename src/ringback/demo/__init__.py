"""The demo spa and its simulated phone network (``ringback demo``)."""

# The demo's own staff account, so the inbox can be opened beside the phone. It exists
# only in the demo's database (var/demo), never in a real install.
DEMO_OWNER_EMAIL = "owner@demo.ringback"
DEMO_OWNER_PASSWORD = "ringback-demo-only"  # noqa: S105 - printed on screen; demo data only
