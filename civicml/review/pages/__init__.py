"""The console's routers, one per page family: sign-in, overview (dashboard, audit), versions, records."""
