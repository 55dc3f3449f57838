"""Checks for the exercises of notebook 03 (event enrichment)."""

from __future__ import annotations

import uuid

from ...lab import IngressError, Lab
from .checking import SERVER, answer, check, crash, expect, stored_state

PARIS = {"timestamp": "2024-10-10 13:00", "location": "Pinetree Road 5, Paris"}
AMSTERDAM = {"timestamp": "2024-10-10 17:00", "location": "Bridge 6, Amsterdam"}


@check("Exercise 3.1 · a delivered flag")
def check_delivered(lab: Lab) -> None:
    package = f"package-{uuid.uuid4().hex[:6]}"
    answer(lab, "DeliveryTracker", "RegisterPackage", {"finalDestination": AMSTERDAM["location"]},
           key=package)
    registered = lab.ingress.get("DeliveryTracker", "getPackageInfo", key=package) or {}
    expect(registered.get("delivered") is False, '"delivered": false right after the registration',
           f"the state after the registration: {registered}",
           'set "delivered": false in the package info that RegisterPackage stores')
    answer(lab, "DeliveryTracker", "UpdateLocation", PARIS, key=package)
    on_the_way = lab.ingress.get("DeliveryTracker", "getPackageInfo", key=package) or {}
    expect(on_the_way.get("delivered") is False, '"delivered": false while on the way',
           f"the state after Paris: {on_the_way}",
           'set "delivered" in the package info at registration and at every update')
    crash(lab, SERVER, "between two location updates")
    answer(lab, "DeliveryTracker", "UpdateLocation", AMSTERDAM, key=package)
    arrived = lab.ingress.get("DeliveryTracker", "getPackageInfo", key=package) or {}
    expect(arrived.get("delivered") is True,
           '"delivered": true once a location equals the finalDestination',
           f"the state after Amsterdam: {arrived}",
           "compare update[\"location\"] with info[\"finalDestination\"]")
    expect(arrived.get("locations") == [PARIS, AMSTERDAM], "both locations kept, in order",
           f"locations: {arrived.get('locations')}", "append every update")


@check("Exercise 3.2 · updates that arrive before the registration")
def check_early_updates(lab: Lab) -> None:
    package = f"package-{uuid.uuid4().hex[:6]}"
    for update in (PARIS, AMSTERDAM):  # the scanner is faster than the registration
        try:
            answer(lab, "EarlyBirdTracker", "UpdateLocation", update, key=package)
        except IngressError as error:
            expect(False, "an update for a package not registered yet to be accepted and kept",
                   f"UpdateLocation answered HTTP {error.status}: {error.message}",
                   "instead of failing, store the update in a state key of its own "
                   "(e.g. \"early-locations\") and return")
    kept = stored_state(lab, "EarlyBirdTracker", package)
    expect(bool(kept), "the early updates kept in the package's state in Restate",
           "nothing in the state of the package after two early updates",
           "store them with ctx.set(\"early-locations\", …): a variable in memory is gone "
           "after a restart of the service")
    crash(lab, SERVER, "before the registration")
    answer(lab, "EarlyBirdTracker", "RegisterPackage", {"finalDestination": "Depot 1, Utrecht"},
           key=package)
    info = lab.ingress.get("EarlyBirdTracker", "getPackageInfo", key=package)
    expect(isinstance(info, dict) and info.get("locations") == [PARIS, AMSTERDAM],
           "both early updates in the package's locations, in the order they came",
           f"getPackageInfo answered {info}",
           "in UpdateLocation, when the package is not registered yet, keep the update in a "
           "state key of its own; in RegisterPackage, start the locations with those")
    expect(info.get("finalDestination") == "Depot 1, Utrecht",
           "the registration's finalDestination", f"getPackageInfo answered {info}",
           "set finalDestination in RegisterPackage as before")
    later = {"timestamp": "2024-10-11 09:00", "location": "Depot 1, Utrecht"}
    answer(lab, "EarlyBirdTracker", "UpdateLocation", later, key=package)
    info = lab.ingress.get("EarlyBirdTracker", "getPackageInfo", key=package)
    expect(info["locations"] == [PARIS, AMSTERDAM, later],
           "an update after the registration appended as usual",
           f"locations: {info['locations']}", "after the registration, append to the locations")
