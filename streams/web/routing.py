"""Requests across workers: find a key's owner, or gather every worker's part.

faust's `table_route` forwards a GET to the worker that owns a key. Lists
have no single key, so each worker returns its own partitions' part for
`scope=local`, and the worker that got the request merges the parts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from faust import web
from faust.exceptions import SameNode
from yarl import URL

from schemas.records import group_key_of

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[web.Response]]
LOCAL_SCOPE = "local"
PEER_TIMEOUT = aiohttp.ClientTimeout(total=10.0)


def _ident(url: URL) -> tuple[str, int]:
    return (url.host or "", int(url.port or 80))


def is_local(request: web.Request) -> bool:
    """Return whether a request is for this worker's partitions only."""
    return request.query.get("scope") == LOCAL_SCOPE


def peer_urls(app: faust.App) -> list[URL]:
    """Return the web view URLs of the other workers that own table partitions."""
    own = _ident(URL(str(app.conf.canonical_url)))
    peers = []
    for host in app.router.tables_metadata():
        url = URL(str(host))
        if _ident(url) != own:
            peers.append(url)
    return sorted(peers, key=str)


async def gather_from_peers(
    app: faust.App, request: web.Request
) -> tuple[list[Any], list[str]]:
    """Send the request's GET with `scope=local` to every other worker.

    Returns the JSON bodies that came back and the URL of each worker that
    failed, so the caller can report a partial result.
    """
    query = {**request.query, "scope": LOCAL_SCOPE}
    path = request.url.path

    async def fetch(peer: URL) -> Any:
        url = peer.with_path(path).with_query(query)
        async with app.http_client.get(url, timeout=PEER_TIMEOUT) as response:
            response.raise_for_status()
            return await response.json()

    peers = peer_urls(app)
    results = await asyncio.gather(
        *(fetch(peer) for peer in peers), return_exceptions=True
    )
    bodies: list[Any] = []
    failed: list[str] = []
    for peer, result in zip(peers, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("request to worker %s failed path=%s: %r", peer, path, result)
            failed.append(str(peer))
        else:
            bodies.append(result)
    return bodies, failed


def owner_known(app: faust.App, table_name: str, key: str) -> bool:
    """Return whether this worker can tell which worker owns `key`.

    aiokafka's producer raises TypeError while its metadata lacks the
    table's changelog topic, as after a failed metadata refresh. Callers
    then respond from their own tables rather than fail the request.
    """
    try:
        app.router.key_store(table_name, key)
    except TypeError:
        log.warning(
            "owner of key %r in table %s unknown: no metadata for its changelog "
            "topic yet; responding from this worker",
            key,
            table_name,
        )
        return False
    except KeyError:
        # No assignment yet, so faust's router responds 503.
        return True
    return True


def table_route_or_local(
    app: faust.App, table: Any, match_info: str
) -> Callable[[Handler], Handler]:
    """Decorate a view like faust's `table_route`, but respond locally while
    the owner of the key is unknown (see `owner_known`)."""

    def decorator(handler: Handler) -> Handler:
        routed = app.table_route(table=table, match_info=match_info)(handler)

        @functools.wraps(handler)
        async def dispatch(
            view: web.View, request: web.Request, *args: Any, **kwargs: Any
        ) -> web.Response:
            key = request.match_info[match_info]
            if owner_known(app, table.name, key):
                response: web.Response = await routed(view, request, *args, **kwargs)
                return response
            local: web.Response = await handler(view, request, *args, **kwargs)
            return local

        return dispatch

    return decorator


async def route_to_owner(
    app: faust.App, table_name: str, key: str, view: web.View, request: web.Request
) -> web.Response | None:
    """Forward a GET to the worker owning `key`; None when this worker owns it.

    This is what `table_route` does, for keys derived from the path (an
    incident's group key from its id).
    """
    if not owner_known(app, table_name, key):
        return None
    try:
        response: web.Response = await app.router.route_req(
            table_name, key, view.web, request
        )
    except SameNode:
        return None
    return response


async def load_incident(
    app: faust.App,
    incidents: Any,
    incident_id: str,
    view: web.View,
    request: web.Request,
) -> dict[str, Any] | web.Response:
    """Return the stored incident, or the response to send instead.

    The response is 400 for an invalid id, the owner's response when
    another worker owns the incident, or 404 when it does not exist.
    """
    try:
        group_key = group_key_of(incident_id)
    except ValueError as exc:
        return view.json({"error": str(exc)}, status=400)
    routed = await route_to_owner(app, incidents.name, group_key, view, request)
    if routed is not None:
        return routed
    incident: dict[str, Any] | None = incidents.get(incident_id)
    if incident is None:
        return view.json({"error": f"incident {incident_id!r} not found"}, status=404)
    return incident


def owned_here(app: faust.App, table_name: str, key: str) -> bool:
    """Return whether this worker owns the partition of `key` in a table."""
    if not owner_known(app, table_name, key):
        return True
    try:
        owner = app.router.key_store(table_name, key)
    except KeyError:
        return True
    return _ident(URL(str(owner))) == _ident(URL(str(app.conf.canonical_url)))


async def get_from_owner(
    app: faust.App, table_name: str, key: str, path: str
) -> Any | None:
    """Return the JSON body of a GET of `path` on the owner of `key`.

    Returns None when the owner responds 404, and raises
    aiohttp.ClientResponseError for any other status but 200.
    """
    owner = URL(str(app.router.key_store(table_name, key)))
    url = owner.with_path(path)
    async with app.http_client.get(url, timeout=PEER_TIMEOUT) as response:
        if response.status == 404:
            return None
        response.raise_for_status()
        return await response.json()
