"""`invoke cutover.serve`: the live, read-only status page over the journal (src/cutover/serve)."""

from __future__ import annotations

import uvicorn
from invoke import Context, task

from cutover.cli.common import COMMON_HELP, refusals
from cutover.engine.journal_db import shown
from cutover.engine.session import RunOptions, Session
from cutover.paths import resolve
from cutover.serve import access
from cutover.serve.app import StatusSource, create_app
from cutover.ui import console


@task(name="serve", help={
    "plan": COMMON_HELP["plan"], "journal": COMMON_HELP["journal"],
    "bind": "address to listen on (default 127.0.0.1: this machine only); any other needs --token-file",
    "port": "port to listen on (default 8765)",
    "token_file": "a file (mode 600) holding the read-only token every request must then carry "
                  "(Authorization: Bearer TOKEN, or ?token=TOKEN on a link); never the token itself: "
                  "a command line shows in ps"})
@refusals
def serve(c: Context, plan: str | None = None, journal: str | None = None, bind: str = "127.0.0.1",
          port: int = 8765, token_file: str | None = None) -> None:
    """The live status page for everyone not at a terminal: site × phase matrix, timeline with
    countdowns, a view per department, recent notifications, overrides and confirmations.
    Read-only; it updates itself. Ctrl-C ends it."""
    token = access.token_for(bind, token_file)  # refused before anything is read or listened on
    cfg = c.config.cutover
    session = Session(RunOptions(plan=plan or cfg.plan, journal=journal or cfg.journal,
                                 artifacts=cfg.artifacts))
    source = StatusSource.of(session, resolve(cfg.artifacts))
    sock = access.listen(bind, port)
    host = f"[{bind}]" if ":" in bind else bind
    console.print(f"status page of {session.plan.plan.name} (journal {shown(session.journal_path)}): "
                  f"http://{host}:{sock.getsockname()[1]}/ — read-only"
                  + (f", token from {token_file}" if token else ", this machine only"),
                  markup=False, highlight=False, soft_wrap=True)
    # access_log off: a link's ?token= would be printed; the page itself logs nothing a viewer sent
    config = uvicorn.Config(create_app(source, token), access_log=False, log_level="warning",
                            server_header=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
