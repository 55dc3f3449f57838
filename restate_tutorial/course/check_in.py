"""The versions of ``CheckIn`` served in a running lab, for notebook 05."""

from __future__ import annotations

from ..lab import Lab
from ..patterns.versions import check_in_service
from ..simulated import airline


class CheckInLab:
    """The versions of CheckIn in a running lab, and the airline's side of each check-in.

    Every action can be repeated (a notebook cell run twice): ``deploy`` serves each label once,
    ``start`` sends with the trip id as idempotency key (a repeat attaches to the same
    invocation), and ``replace_code`` with the version already there changes nothing.
    """

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.deployments: dict[str, str] = {}  # label → deployment id
        self.code: dict[str, str] = {}  # deployment id → version served there now

    def deploy(self, label: str, version: str | None = None) -> str:
        """Serve ``version`` (default: ``label``) as a new deployment; returns its id."""
        if label not in self.deployments:
            deployment = self.lab.serve(check_in_service(version or label))
            self.deployments[label], self.code[deployment] = deployment, version or label
        return self.deployments[label]

    def replace_code(self, label: str, version: str) -> None:
        """Swap the code behind deployment ``label`` for ``version``, unbeknownst to Restate."""
        deployment = self.deployments[label]
        if self.code[deployment] != version:
            self.lab.replace_code(deployment, check_in_service(version))
            self.code[deployment] = version

    def start(self, trip_id: str) -> str:
        """Start checking in ``trip_id``; returns the invocation id once it waits for boarding."""
        invocation_id = self.lab.ingress.send("CheckIn", "Run", {"trip_id": trip_id},
                                              idempotency_key=f"check-in {trip_id}")
        # Its third step done (seat key, seat, call-back request): it waits for boarding now.
        self.lab.admin.wait_for_entry(invocation_id, "Notification: Run", count=3)
        return invocation_id

    def open_boarding(self, trip_id: str) -> None:
        """The airline opens boarding: it resolves the trip's newest call-back."""
        callback = airline.callback_id(trip_id)
        if callback is None:
            raise ValueError(f"nothing waits for boarding of {trip_id}: start it first")
        self.lab.ingress.resolve_awakeable(callback, "boarding")
