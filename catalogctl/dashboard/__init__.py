"""`catalogctl dashboard`: a local web app over the feed state (see web.py)."""
