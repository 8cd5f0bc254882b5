"""What owners set up from the browser: the texting registration helper (and, as it
grows, the location settings, message templates and team)."""
