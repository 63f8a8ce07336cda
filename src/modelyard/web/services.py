"""The catalog services a console page calls, built for the request from the gateway's store.

They are cheap to make (no connections of their own); the policy file is read each time, so
an edited policy applies at once, as it does for the CLI.
"""

from __future__ import annotations

from starlette.requests import Request

from modelyard.catalog.advisories import Advisories
from modelyard.catalog.aliases import Aliases
from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.proposals import Proposals
from modelyard.governance.policy import load_policy
from modelyard.web.state import gateway_of


def lifecycle_of(request: Request) -> Lifecycle:
    gateway = gateway_of(request)
    return Lifecycle(gateway.registry, gateway.settings, load_policy(gateway.settings))


def proposals_of(request: Request) -> Proposals:
    return Proposals(lifecycle_of(request))


def aliases_of(request: Request) -> Aliases:
    gateway = gateway_of(request)
    return Aliases(gateway.registry, gateway.settings)


def advisories_of(request: Request) -> Advisories:
    gateway = gateway_of(request)
    return Advisories(gateway.registry, gateway.settings)
