"""The custodian's service: what one worker process holds (:class:`Service`); the app that
serves it is :func:`portal_core.server.routes.service_app`.

A :class:`Service` is the store, the KMS, the tenants, the enclave's components and the
custodian's settings; it keeps no protocol state of its own (sessions, locks, eject
windows, challenges and counters are rows in the store), so any number of workers built
from the same settings serve any request.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portal_core.backup.custodian import DEFAULT_KEY_NAME
from portal_core.server.app import checks
from portal_core.server.metrics import Metrics

if TYPE_CHECKING:
    from portal_core.backup.custodian import LocalCustodian
    from portal_core.enclave.passkey import PasskeyEnclave
    from portal_core.enclave.vault import PinVault
    from portal_core.kms import Pkcs11Kms
    from portal_core.store import SqliteStore
    from portal_core.tenants import Tenants
    from portal_core.webhooks import TenantWebhooks

__all__ = ["Limits", "Service"]


@dataclass(frozen=True)
class Limits:
    """Per-client and per-address request limits, as ``(requests, per seconds)``.

    ``guesses``: vault releases and passkey finishes of one client (each may be a guess at
    a PIN or an assertion). ``auth_failures``: refused API keys from one address (a key
    guesser); past it, the address gets ``429`` before its key is looked at.
    ``idempotency_ttl``: seconds a replayable write's answer is kept for retries.
    """

    guesses: tuple[int, float] = (30, 60.0)
    auth_failures: tuple[int, float] = (20, 60.0)
    idempotency_ttl: float = 24 * 3600.0


@dataclass
class Service:
    """One worker's handles on the shared state.

    ``store``: the custodian's records, tenants, keys and audit trail. ``kms``: seals the
    custodian's shares (and the enclave's records when it runs the enclave). ``operator``:
    who runs this custodian (its HSM and store), reported to clients as the keeper of
    backups. ``vault`` / ``passkey``: the enclave's components when this service runs them
    (``None``: their endpoints answer 404). ``clock``: seconds since the epoch.
    ``custodian_options``: further keyword arguments of every tenant's
    :class:`~portal_core.backup.LocalCustodian` (``eject_window``, ``lock_ttl``, ...).
    ``closing``: what :meth:`close` closes (the store, the KMS: whoever opened them put
    them there; :func:`~portal_core.server.runtime.open_service` does). ``metrics``: the
    service's metrics (served at ``/metrics``; the custodian reports its flows to them; the
    builder times the KMS with :class:`~portal_core.server.metrics.TimedKms`). ``limits``:
    the request limits (:class:`Limits`).
    """

    store: SqliteStore
    kms: Pkcs11Kms
    tenants: Tenants
    operator: str
    vault: PinVault | None = None
    passkey: PasskeyEnclave | None = None
    clock: Callable[[], float] = time.time
    custodian_options: dict[str, Any] = field(default_factory=dict)
    closing: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)
    metrics: Metrics | None = None
    limits: Limits = field(default_factory=Limits)
    _custodians: dict[str, LocalCustodian] = field(default_factory=dict, repr=False)
    _versions: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def custodian(self) -> LocalCustodian:
        """The custodian of every tenant in custodian-managed mode (made once; it holds no
        per-request state)."""
        return self._custodian_for("", "")

    @functools.cached_property
    def webhooks(self) -> TenantWebhooks:
        """The tenants' webhook settings (secrets sealed under the custodian's key)."""
        from portal_core.webhooks import TenantWebhooks

        key_name = self.custodian_options.get("key_name", DEFAULT_KEY_NAME)
        return TenantWebhooks(self.store, self.kms, key_name=key_name, clock=self.clock)

    def custodian_for(self, tenant_id: str) -> LocalCustodian:
        """The custodian serving ``tenant_id``'s clients: self-managed, with the tenant's
        webhooks as the integrator, when the tenant configured some (read per request, so
        every worker follows a change at once), else :meth:`custodian`. The integrator's
        operator identity is ``integrator:<tenant id>``."""
        record = self.store.tenant_webhook(tenant_id)
        if record is None:
            return self.custodian()
        version = hashlib.sha256(record.base_url.encode() + record.sealed_secret).hexdigest()
        with self._lock:
            found = self._custodians.get(tenant_id)
        if found is not None and self._versions.get(tenant_id) == version:
            return found
        from portal_core.webhooks import HttpIntegratorStore

        config = self.webhooks.get(tenant_id)
        assert config is not None  # read just above; a removal since is caught next request
        custodian = self._custodian_for(
            tenant_id,
            version,
            integrator=HttpIntegratorStore(config.base_url, config.secret),
            integrator_operator=f"integrator:{tenant_id}",
        )
        return custodian

    def _custodian_for(self, key: str, version: str, **options: Any) -> LocalCustodian:
        from portal_core.backup.custodian import LocalCustodian

        with self._lock:
            found = self._custodians.get(key)
            if found is not None and self._versions.get(key) != version:
                if found.integrator is not None:  # replaced settings: close their client
                    getattr(found.integrator, "close", lambda: None)()
                found = None
            if found is None:
                settings = {**self.custodian_options, **options}
                if self.metrics is not None:
                    settings.setdefault("events", self.metrics.flow_event)
                found = LocalCustodian(
                    self.kms, self.store, operator=self.operator, clock=self.clock, **settings
                )
                self._custodians[key] = found
                self._versions[key] = version
            return found

    def close(self) -> None:
        """Closes what ``closing`` holds, last opened first (at shutdown; a second call does
        nothing)."""
        self.closing.close()

    def readiness(self) -> dict[str, bool]:
        """``/readyz``: the store answers a query, and the HSM reads the custodian key's
        versions (one call, whatever else the token holds: listing every key grows with the
        token, and a readiness check must stay cheap)."""
        key_name = self.custodian_options.get("key_name", DEFAULT_KEY_NAME)
        return dict(
            checks(
                store=lambda: self.store.schema_version, hsm=lambda: self.kms.describe(key_name)
            )()
        )
