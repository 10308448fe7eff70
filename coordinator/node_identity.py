"""Which node a channel is (issue 18): a node credential is one node, whatever its
hello says, and an enrolled node's id answers to its own credential only. Before this,
any holder of the farm token could send a hello with another node's listed id and
attempt, be told to resume, and finish that node's job under its own name."""
from __future__ import annotations

from aiohttp import web

from . import keys
from .auth import principal_of
from .auth_policy import NODE
from .store import credentials as credential_sql
from .validation import ValidationError


async def node_identity(request: web.Request, hello: dict) -> dict:
    """The hello as the coordinator takes it: with the credential's node id and name."""
    who = principal_of(request)
    claimed = hello.get("node_id")
    if who is not None and who.role == NODE:
        if claimed and claimed != who.node_id:
            raise ValidationError("node_id", "is not the node this credential belongs to")
        # Its name is the credential's (the join code's, else the one it joined with):
        # a node cannot pass itself off as another by name either.
        return {**hello, "node_id": who.node_id, "name": who.name}
    if claimed and await request.app[keys.DB].read(credential_sql.node_is_enrolled, claimed):
        raise ValidationError("node_id", "belongs to an enrolled node; connect with its "
                                         "own credential")
    return hello
