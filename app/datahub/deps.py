"""FastAPI dependencies: services, settings, symbol parsing.

All ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
hop per request that cost more than the webhook's own work."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.datahub.services import Services


def services_of(request: Request) -> Services:
    """For the webhook, the one hot route: a dependency costs FastAPI a second pass of
    parameter solving (query, headers, cookies) per request."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    return services_of(request)


async def get_settings(services: Annotated[Services, Depends(get_services)]) -> Settings:
    return services.settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
