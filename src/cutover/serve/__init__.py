"""`invoke cutover.serve`: the live, read-only status page over the journal (issue #16, item 4).

view.py: what the page shows, from what `cutover.status` collects; app.py: the Starlette
application (GET only, a token when it must have one, strict headers); access.py: where it may
listen and the token it asks for.
"""
