"""Self-managed mode over HTTP: the integrator's webhooks, signed and checked.

In self-managed mode the integrator (the wallet operator's backend) keeps the custodian's
backup shares, sealed under the custodian's KMS. :class:`HttpIntegratorStore` is the
:class:`~portal_core.backup.api.IntegratorBackupStore` that reaches it over HTTP;
:mod:`portal_core.server.receiver` is a reference receiver; ``docs/webhooks.md`` is the
protocol for integrators.

**The requests.** Each is a ``POST`` of a JSON object (bytes as base64url without padding,
:mod:`portal_core.wire`) to the integrator's base URL plus:

* ``/backup``: ``{"clientId", "backupMethod", "pairId", "share", "nonce"}``; any 2xx once
  the share is stored (the same key again replaces it);
* ``/backup/fetch``: ``{"clientId", "backupMethod", "pairId", "nonce"}``; 200 with
  ``{"share": ...}``, or 404 with ``{"code": "NO_VALID_BACKUP"}`` for a share it does
  not have;
* ``/backup/delete``: the same body as a fetch; any 2xx, also for a share it does not have.

``backupMethod`` is ``"<METHOD>-<CURVE>"`` and the field names are camelCase, as the seed
system's webhooks spell them. ``nonce`` is 16 random bytes in hex: no two requests have the
same body, so none has the same signature (see below).

**The signature (v1).** Every request carries::

    X-Webhook-Secret:    <secret>
    X-Portal-Timestamp:  <seconds since the epoch, decimal>
    X-Portal-Signature:  v1=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>

``body`` is the exact bytes sent; a receiver verifies over the bytes it received, before
parsing them (:func:`verify`). It refuses a timestamp more than ``window_s`` (300 s) from
its own clock, and a signature it has already seen inside that window (a replay; it
remembers signatures until they age out of the window). Every comparison is constant-time
(:func:`hmac.compare_digest`).

``X-Webhook-Secret`` is the seed system's header, kept so that its receivers keep working.
It carries the secret itself, so whoever reads a request's headers (a proxy that logs them)
can sign requests of their own: the signature adds integrity of the body and freshness
against anyone who sees less than that, and it is what a receiver should check. TLS is
required except to a loopback address (:class:`WebhookConfig`); redirects are never
followed (they would carry the secret to another host).

**What the custodian does with the answers.** A share it stores is read back at once
(``/backup/fetch``) and opened and checked against its pair before the backup is recorded,
and again before the backup may complete; a share of another pair does not open under this
pair's KMS context (``ShareVerificationFailed``). A request with no answer within
``timeout_s`` (10 s), refused (connection refused, TLS failure), answered with a status
other than 2xx, or answered with a malformed body raises :class:`FailedWebhook`
(``FAILED_WEBHOOK``, 502); the backup then does not complete and the previous one stays.

**Tenants' webhooks.** :class:`TenantWebhooks` keeps each tenant's base URL and secret in
the custodian's store, the secret sealed under the custodian's KMS with a context naming the
tenant, and appends an audit event when a webhook is configured or removed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from portal_core import DISTRIBUTION
from portal_core.backup.errors import NoValidBackup
from portal_core.exceptions import InvalidEnvelope, InvalidTag, PortalError
from portal_core.kms.contract import KeyedSealingKms
from portal_core.store.custodian_records import AuditEntry
from portal_core.store.tenant_interface import TenantStore, TenantWebhookRecord
from portal_core.tenants import AuditKind, Principal, Tenants
from portal_core.wire import b64url_decode, b64url_encode

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_WINDOW_S",
    "PATHS",
    "SECRET_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "FailedWebhook",
    "HttpIntegratorStore",
    "TenantWebhooks",
    "Verified",
    "WebhookConfig",
    "WebhookSignatureInvalid",
    "check_secret",
    "new_secret",
    "sign",
    "signed_headers",
    "verify",
]

SECRET_HEADER = "X-Webhook-Secret"  # noqa: S105 - a header name, not a secret
TIMESTAMP_HEADER = "X-Portal-Timestamp"
SIGNATURE_HEADER = "X-Portal-Signature"
_SCHEME = "v1"
# The endpoints, after the integrator's base URL.
PATHS: Mapping[str, str] = {
    "store": "/backup",
    "fetch": "/backup/fetch",
    "delete": "/backup/delete",
}
DEFAULT_TIMEOUT_S = 10.0  # the seed system's
DEFAULT_WINDOW_S = 300
# A generated secret: 256 random bits (43 characters). A configured one: 32 to 512 characters.
_SECRET_BYTES = 32
_MIN_SECRET_CHARS = 32
_MAX_SECRET_CHARS = 512
_MAX_TIMESTAMP_DIGITS = 12
# A fetch answer holds one sealed share (hundreds of bytes): anything past this is refused.
_MAX_ANSWER_BYTES = 64 * 1024
_LOOPBACK_NAMES = ("localhost",)


class FailedWebhook(PortalError):
    """The integrator's webhook failed: no answer within the timeout, the connection
    refused or its TLS failed, a status other than 2xx (its secret or signature refused
    among them), or a malformed answer. The message names the webhook and what to check;
    it never holds the secret."""


class WebhookSignatureInvalid(PortalError):
    """A receiver refused a webhook request: the secret header missing or wrong, the
    timestamp outside the replay window, the signature missing, malformed or not the
    body's, or a signature already seen (a replay). Says which, never the secret."""


def new_secret() -> str:
    """A new webhook secret: 32 random bytes (256 bits) as 43 base64url characters."""
    return secrets.token_urlsafe(_SECRET_BYTES)


def check_secret(secret: str) -> bytes:
    """The secret's bytes (the HMAC key), once it is a usable secret: 32 to 512 visible
    ASCII characters (a header value, long enough to have been generated).

    Raises ValueError (without quoting it) otherwise.
    """
    if (
        not isinstance(secret, str)
        or not _MIN_SECRET_CHARS <= len(secret) <= _MAX_SECRET_CHARS
        or not all("!" <= c <= "~" for c in secret)
    ):
        raise ValueError(
            f"a webhook secret is {_MIN_SECRET_CHARS} to {_MAX_SECRET_CHARS} visible ASCII "
            "characters: make one with portal_core.webhooks.new_secret()"
        )
    return secret.encode("ascii")


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Portal-Signature`` value of ``body`` sent at ``timestamp``:
    ``v1=`` and the hex HMAC-SHA256 under the secret of ``f"{timestamp}.".encode() + body``."""
    mac = hmac.new(check_secret(secret), f"{int(timestamp)}.".encode() + body, hashlib.sha256)
    return f"{_SCHEME}={mac.hexdigest()}"


def signed_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The three headers of a webhook request (the module's docstring)."""
    return {
        SECRET_HEADER: secret,
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: sign(secret, body, timestamp),
    }


@dataclass(frozen=True)
class Verified:
    """A request that passed :func:`verify`. ``signature`` is the key a receiver remembers
    until ``timestamp`` plus its window has passed, to refuse a replay."""

    timestamp: int
    signature: str


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    window_s: float = DEFAULT_WINDOW_S,
) -> Verified:
    """Checks a webhook request as its receiver got it: the secret header, the timestamp
    within ``window_s`` of ``now``, and the signature over the exact ``body``, each compared
    in constant time. Replays are the receiver's to refuse, by remembering
    :attr:`Verified.signature` (:mod:`portal_core.server.receiver` does).

    Raises:
        WebhookSignatureInvalid: which check failed.
        ValueError: ``secret`` is not a usable secret.
    """
    key = check_secret(secret)
    lower = {k.lower(): v for k, v in headers.items()}
    given_secret = lower.get(SECRET_HEADER.lower(), "").encode("utf-8", "replace")
    if not hmac.compare_digest(given_secret, key):
        raise WebhookSignatureInvalid(f"the {SECRET_HEADER} header is missing or wrong")
    stamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_TIMESTAMP_DIGITS):
        raise WebhookSignatureInvalid(
            f"the {TIMESTAMP_HEADER} header must be seconds since the epoch, in decimal"
        )
    timestamp = int(stamp)
    skew = now - timestamp
    if abs(skew) > window_s:
        raise WebhookSignatureInvalid(
            f"the request's timestamp is {skew:+.0f} s from this receiver's clock, outside the "
            f"{window_s:g} s window: a replayed request, or clocks that need setting"
        )
    expected = sign(secret, body, timestamp).encode("ascii")
    given = lower.get(SIGNATURE_HEADER.lower(), "").encode("utf-8", "replace")
    if not hmac.compare_digest(given, expected):
        raise WebhookSignatureInvalid(
            f"the {SIGNATURE_HEADER} header is missing or is not the body's {_SCHEME} signature"
        )
    return Verified(timestamp, expected.decode("ascii"))


# A DNS name (letters, digits and hyphens in dot-separated labels); IP addresses are
# checked by the ipaddress module.
_DNS_NAME = re.compile(
    r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?"
)


def _valid_host(host: str) -> bool:
    """Whether ``host`` (as urlsplit lowercases it) is an IP address or a DNS name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_DNS_NAME.fullmatch(host))
    return True


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebhookConfig:
    """Where the integrator's webhooks are and the secret that authenticates them.

    ``base_url``: ``https://host[:port][/path]`` (``http`` only to a loopback host), without
    credentials, query or fragment; kept without a trailing ``/``. ``secret``: 32 to 512
    visible ASCII characters (:func:`new_secret` makes one); not in ``repr``.

    Raises ValueError (never quoting the secret) for either.
    """

    base_url: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        check_secret(self.secret)
        if not isinstance(self.base_url, str):
            raise ValueError("a webhook base URL must be a string")
        try:
            url = urllib.parse.urlsplit(self.base_url)
            host = url.hostname
            url.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError as e:
            raise ValueError(f"the webhook base URL is malformed: {e}") from None
        if url.scheme not in ("https", "http") or not host or not _valid_host(host):
            raise ValueError("a webhook base URL is https://host[:port][/path]")
        if not self.base_url.isascii() or not self.base_url.isprintable() or " " in self.base_url:
            raise ValueError("a webhook base URL is printable ASCII without spaces")
        if url.scheme == "http" and not _is_loopback(host):
            raise ValueError(
                "a webhook base URL must use https (http is accepted for a loopback host only): "
                "the requests carry the webhook secret and the sealed shares"
            )
        if url.username is not None or url.password is not None:
            raise ValueError("a webhook base URL must not hold credentials: use the secret")
        if url.query or url.fragment:
            raise ValueError("a webhook base URL has no query or fragment")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))


def _httpx() -> ModuleType:
    """httpx, imported when the first store is made (the ``client`` or ``server`` extra), so
    that this module's errors and signatures import without it."""
    try:
        import httpx
    except ModuleNotFoundError as e:
        if e.name != "httpx":
            raise
        raise ImportError(
            f"HttpIntegratorStore needs httpx: pip install '{DISTRIBUTION}[client]'"
        ) from None
    return httpx


class HttpIntegratorStore:
    """The integrator's webhooks over HTTP: an
    :class:`~portal_core.backup.api.IntegratorBackupStore` for ``LocalCustodian(...,
    integrator=...)``.

    ``base_url``, ``secret``: as :class:`WebhookConfig` checks them. ``timeout_s``: each
    request is abandoned once it has waited that long for a connection, to send, or between
    two parts of the answer, and once the answer is still arriving that long after the
    request began. ``client``: an ``httpx.Client`` to send with (its timeout is overridden
    by ``timeout_s``; redirects are never followed); none: one of its own, verifying TLS
    certificates, closed by :meth:`close`. ``clock``: seconds since the epoch, for the
    timestamps (tests move it).

    Raises (every method): :class:`FailedWebhook`; :meth:`fetch` also NoValidBackup.
    Thread-safe, as an ``httpx.Client`` is.
    """

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = WebhookConfig(base_url, secret)
        if not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ValueError("timeout_s must be a positive number of seconds")
        self.timeout_s = float(timeout_s)
        self.clock = clock
        self._httpx = _httpx()
        self._owns_client = client is None
        self._client: httpx.Client = (
            self._httpx.Client(timeout=self.timeout_s, verify=True, follow_redirects=False)
            if client is None
            else client
        )

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def __repr__(self) -> str:
        return f"HttpIntegratorStore(base_url={self.base_url!r}, timeout_s={self.timeout_s:g})"

    def close(self) -> None:
        """Closes the HTTP client, if it is this store's own."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HttpIntegratorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- IntegratorBackupStore -------------------------------------------------------------

    def store(self, client_id: str, backup_method: str, pair_id: str, share: bytes) -> None:
        fields = _fields(client_id, backup_method, pair_id)
        self._post("store", {**fields, "share": b64url_encode(bytes(share))})

    def fetch(self, client_id: str, backup_method: str, pair_id: str) -> bytes:
        status, answer = self._post("fetch", _fields(client_id, backup_method, pair_id))
        if status == 404:  # _post lets only a NO_VALID_BACKUP 404 through
            raise NoValidBackup(
                f"the integrator holds no {backup_method} share for pair {pair_id!r}"
            )
        value = answer.get("share") if isinstance(answer, dict) else None
        try:
            if not isinstance(value, str):
                raise ValueError("no share")
            return b64url_decode(value)
        except ValueError:
            raise FailedWebhook(
                f"{self._what('fetch')} answered without a share (a JSON object with "
                "'share', base64url without padding): check the receiver against "
                "docs/webhooks.md"
            ) from None

    def delete(self, client_id: str, backup_method: str, pair_id: str) -> None:
        self._post("delete", _fields(client_id, backup_method, pair_id))

    # -- HTTP ------------------------------------------------------------------------------

    def _what(self, action: str) -> str:
        return f"the integrator's {action} webhook (POST {self.base_url}{PATHS[action]})"

    def _post(self, action: str, fields: Mapping[str, str]) -> tuple[int, Any]:
        """Sends one signed request; its status and its JSON answer (None for none).

        Raises FailedWebhook unless the status is 2xx, or 404 ``NO_VALID_BACKUP`` for a fetch.
        """
        httpx = self._httpx
        what = self._what(action)
        payload = {**fields, "nonce": secrets.token_hex(16)}
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            **signed_headers(self._config.secret, body, int(self.clock())),
        }
        deadline = time.monotonic() + self.timeout_s
        late = FailedWebhook(
            f"{what} did not answer within {self.timeout_s:g} s: check that the receiver is "
            "up, reachable from the custodian and not stalled"
        )
        try:
            with self._client.stream(
                "POST",
                self.base_url + PATHS[action],
                content=body,
                headers=headers,
                timeout=self.timeout_s,
                follow_redirects=False,
            ) as response:
                raw = bytearray()
                for chunk in response.iter_bytes():
                    raw += chunk
                    if time.monotonic() > deadline:
                        raise late
                    if len(raw) > _MAX_ANSWER_BYTES:
                        raise FailedWebhook(
                            f"{what} answered more than {_MAX_ANSWER_BYTES} bytes: check the "
                            "receiver against docs/webhooks.md"
                        )
                status = response.status_code
        except httpx.TimeoutException:
            raise late from None
        except httpx.HTTPError as e:
            raise FailedWebhook(
                f"{what} failed ({type(e).__name__}): check the base URL, that the receiver "
                "listens there, and its TLS certificate"
            ) from None
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        if 200 <= status < 300:
            return status, answer
        if (
            action == "fetch"
            and status == 404
            and isinstance(answer, dict)
            and answer.get("code") == "NO_VALID_BACKUP"
        ):
            return status, answer
        if status in (401, 403):
            raise FailedWebhook(
                f"{what} was refused (HTTP {status}): check that the receiver holds this "
                f"tenant's current webhook secret and that both clocks agree within "
                f"{DEFAULT_WINDOW_S} s"
            )
        raise FailedWebhook(f"{what} answered HTTP {status}: check the receiver's log")


def _fields(client_id: str, backup_method: str, pair_id: str) -> dict[str, str]:
    return {"clientId": client_id, "backupMethod": backup_method, "pairId": pair_id}


class TenantWebhooks:
    """Each tenant's webhook configuration, in the custodian's store, its secret sealed
    under the custodian's KMS.

    ``key_name``: the custodian's key (``LocalCustodian.key_name``; created if missing).
    The sealing context names the tenant, so a sealed secret copied into another tenant's
    row does not open. ``clock``: seconds since the epoch, for records and events.

    Operations take ``by``, the :class:`~portal_core.tenants.Principal` of the admin key
    used (checked with :func:`~portal_core.tenants.require_admin`; its key id goes into the
    audit event); ``by=None`` is the operator, trusted (the rule of
    :class:`~portal_core.tenants.Tenants`).
    """

    def __init__(
        self,
        store: TenantStore,
        kms: KeyedSealingKms,
        *,
        key_name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.kms = kms
        self.key_name = key_name
        self.clock = clock
        kms.ensure_key(key_name)

    def __repr__(self) -> str:
        return f"TenantWebhooks(key_name={self.key_name!r}, store={self.store!r})"

    @staticmethod
    def _context(tenant_id: str) -> dict[str, str]:
        return {"tenant": tenant_id, "kind": "webhook-secret"}

    def configure(
        self, tenant_id: str, config: WebhookConfig, *, by: Principal | None = None
    ) -> None:
        """Sets the tenant's webhook (replacing any), and appends ``webhook.configured``
        naming the base URL.

        Raises:
            NotAuthorized: ``by`` is not an admin key of the tenant.
            UnknownTenant: no such tenant.
        """
        detail = Tenants._by(by, tenant_id)
        now = self.clock()
        sealed = self.kms.seal(
            self.key_name, config.secret.encode("ascii"), context=self._context(tenant_id)
        )
        event = AuditEntry(
            tenant_id,
            now,
            AuditKind.WEBHOOK_CONFIGURED,
            tenant_id,
            {**detail, "base_url": config.base_url},
        )
        record = TenantWebhookRecord(tenant_id, config.base_url, sealed, now)
        self.store.set_tenant_webhook(record, [event])

    def get(self, tenant_id: str, *, by: Principal | None = None) -> WebhookConfig | None:
        """The tenant's webhook, its secret opened; None when it has none.

        Raises:
            NotAuthorized: ``by`` is not an admin key of the tenant.
            FailedWebhook: the sealed secret does not open (altered, or copied from another
                tenant's record): configure the webhook again.
        """
        Tenants._by(by, tenant_id)
        record = self.store.tenant_webhook(tenant_id)
        if record is None:
            return None
        try:
            secret = self.kms.open(record.sealed_secret, context=self._context(tenant_id))
        except (InvalidTag, InvalidEnvelope):
            raise FailedWebhook(
                f"the webhook secret of tenant {tenant_id!r} does not open under its KMS "
                "context (altered, or copied from another tenant's record): configure the "
                "webhook again"
            ) from None
        return WebhookConfig(record.base_url, secret.decode("ascii"))

    def remove(self, tenant_id: str, *, by: Principal | None = None) -> bool:
        """Removes the tenant's webhook, appending ``webhook.removed``; False (and no event)
        when it had none.

        Raises:
            NotAuthorized: ``by`` is not an admin key of the tenant.
        """
        detail = Tenants._by(by, tenant_id)
        event = AuditEntry(tenant_id, self.clock(), AuditKind.WEBHOOK_REMOVED, tenant_id, detail)
        return self.store.delete_tenant_webhook(tenant_id, [event])
