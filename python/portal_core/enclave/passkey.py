"""``PasskeyEnclave``: keys released only after a WebAuthn assertion (docs/passkey.md).

The relying-party side of WebAuthn Level 3: registration (§7.1) and authentication (§7.2)
ceremonies, verified by the ``webauthn`` package (py_webauthn), with what a key-release
service needs around them:

* challenges that are random, single-use and expiring, stored by hash and taken out of the
  store atomically before anything else is checked, so a response is verified at most
  once and two concurrent finishes of one ceremony cannot both succeed;
* login challenges bound to what they authorise: ``begin_login`` records the operation
  (read or write) and the slot, and each finish accepts only a challenge issued for its
  own operation and slot, so an assertion given to write one slot cannot read it, nor
  any other slot;
* typed refusals for each check (challenge, origin, RP id, UP/UV flags, sign counter,
  unknown credential, credential of another user), each checked here before the full
  verification by py_webauthn, which checks them again along with the signature;
* the signature counter advanced by compare-and-set, so two concurrent assertions with
  one counter value cannot both pass;
* keys at rest sealed under an HSM KEK through the KMS, with user, credential, slot and
  mode bound as context; a plaintext key exists only in memory, for the request.

Two modes (:class:`~portal_core.enclave.records.KeyMode`): in ``SERVER`` mode the enclave
holds the key; in ``PRF`` mode the device wraps it under a key derived from the passkey's
PRF output (WebAuthn L3 §10.1.4) and the enclave holds only the wrapped value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    decode_credential_public_key,
    options_to_json_dict,
    parse_attestation_object,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidRegistrationResponse,
    WebAuthnException,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorData,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CollectedClientData,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from portal_core import envelope
from portal_core.enclave._common import (
    DEFAULT_SLOT,
    check_slot,
    check_user,
    open_sealed,
)
from portal_core.enclave.errors import (
    ChallengeRejected,
    CredentialNotOwned,
    KeyNotStored,
    MalformedResponse,
    NoCredentials,
    OriginMismatch,
    PrfOutputExposed,
    RpIdMismatch,
    SignCountNotIncreasing,
    UnknownCredential,
    UserPresenceMissing,
    UserVerificationMissing,
    VerificationFailed,
)
from portal_core.enclave.prf import PRF_KEY_ID
from portal_core.enclave.records import (
    Ceremony,
    ChallengeRecord,
    CredentialRecord,
    KeyMode,
    KeyRecord,
    LoginOperation,
)
from portal_core.enclave.store import EnclaveStore
from portal_core.exceptions import InvalidEnvelope
from portal_core.kms import KeyedSealingKms

__all__ = ["SUPPORTED_ALGORITHMS", "CredentialInfo", "PasskeyEnclave"]

log = logging.getLogger("portal_core.enclave")

# COSE algorithms accepted for credentials (WebAuthn L3 §5.8.5, IANA COSE registry):
# EdDSA (Ed25519), ES256 (P-256), RS256.
SUPPORTED_ALGORITHMS: tuple[int, ...] = (-8, -7, -257)

_CHALLENGE_LEN = 32  # WebAuthn L3 §13.4.3: at least 16 random bytes
_USER_HANDLE_LEN = 32  # WebAuthn L3 §5.4.3: at most 64 bytes, no personal data (§14.6.1)
_PRF_SALT_LEN = 32
_MAX_CREDENTIAL_ID = 1023  # WebAuthn L3 §4 "Credential ID": at most 1023 bytes
_MAX_RESPONSE = 64 * 1024
_MAX_KEY = 4096
_ANDROID_ORIGIN = re.compile(r"android:apk-key-hash:[A-Za-z0-9_-]{16,128}={0,2}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}$)(?:{_LABEL}\.)*{_LABEL}")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_KEY_PURPOSE = "portal-core enclave passkey key"


@dataclass(frozen=True)
class CredentialInfo:
    """A registered passkey as the API reports it (no key material)."""

    credential_id: bytes
    user: str
    alg: int
    fmt: str
    aaguid: str
    sign_count: int
    backup_eligible: bool
    backed_up: bool
    prf_enabled: bool

    @property
    def credential_id_b64(self) -> str:
        return bytes_to_base64url(self.credential_id)

    @classmethod
    def of(cls, record: CredentialRecord) -> CredentialInfo:
        return cls(
            credential_id=record.credential_id,
            user=record.user_id,
            alg=record.alg,
            fmt=record.fmt,
            aaguid=record.aaguid,
            sign_count=record.sign_count,
            backup_eligible=record.backup_eligible,
            backed_up=record.backed_up,
            prf_enabled=record.prf_enabled,
        )


def _check_rp_id(rp_id: object) -> str:
    if not isinstance(rp_id, str):
        raise TypeError("rp_id must be a str")
    if rp_id != "localhost" and not _DOMAIN.fullmatch(rp_id):
        raise ValueError(
            f"rp_id {rp_id!r} is not a lower-case domain name (no scheme, port or path)"
        )
    return rp_id


def _check_origin(origin: object, rp_id: str) -> str:
    """A configured origin: ``https://<rp_id or a subdomain>[:port]``, ``http://localhost``
    for development, or an Android app's ``android:apk-key-hash:<base64url SHA-256 of its
    signing certificate>``. The RP id must be the origin's host or a registrable suffix of
    it (WebAuthn L3 §5.1.3), else no browser would run the ceremony."""
    if not isinstance(origin, str):
        raise TypeError("every origin must be a str")
    if origin.startswith("android:"):
        if not _ANDROID_ORIGIN.fullmatch(origin):
            raise ValueError(
                f"origin {origin!r}: an Android origin is android:apk-key-hash:<base64url "
                "SHA-256 of the app's signing certificate>"
            )
        return origin
    parts = urllib.parse.urlsplit(origin)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"origin {origin!r} is not https://host[:port] or an Android origin")
    if parts.scheme == "http" and host not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError(f"origin {origin!r}: plain http is allowed for localhost only")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"origin {origin!r} must have no path, query, fragment or user info")
    if origin != origin.lower():
        raise ValueError(f"origin {origin!r} must be lower case, as browsers serialise it")
    if host not in _LOCAL_HOSTS and host != rp_id and not host.endswith("." + rp_id):
        raise ValueError(f"origin {origin!r} is not on the RP id {rp_id!r} or a subdomain of it")
    return origin


def _short_id(credential_id: bytes) -> str:
    """A credential id for messages and logs (public, but long): the first 12 characters."""
    text = bytes_to_base64url(credential_id)
    return text if len(text) <= 16 else text[:12] + "..."


def _as_dict(response: object) -> dict[str, Any]:
    """The response as a JSON object (``PublicKeyCredential.toJSON()``, WebAuthn L3 §5.1)."""
    if isinstance(response, str | bytes | bytearray):
        if len(response) > _MAX_RESPONSE:
            raise MalformedResponse(f"the response is larger than {_MAX_RESPONSE} bytes")
        try:
            data = json.loads(response)
        except (ValueError, UnicodeDecodeError):
            raise MalformedResponse("the response is not JSON") from None
    elif isinstance(response, Mapping):
        data = dict(response)
    else:
        raise TypeError(f"the response must be a JSON str or a dict, not {type(response).__name__}")
    if not isinstance(data, dict):
        raise MalformedResponse("the response is not a JSON object")
    return data


def _refuse_prf_results(data: Mapping[str, Any]) -> None:
    """The PRF output (and the older ``hmacGetSecret`` output) must never reach the server
    (docs/passkey.md): refuse a response that carries one."""
    ext = data.get("clientExtensionResults")
    if not isinstance(ext, Mapping):
        return
    prf = ext.get("prf")
    if (isinstance(prf, Mapping) and prf.get("results") is not None) or ext.get(
        "hmacGetSecret"
    ) is not None:
        raise PrfOutputExposed(
            "the response carries the passkey's PRF output: the client must remove "
            "clientExtensionResults.prf.results before sending it (portal_core.enclave.prf."
            "split_prf_output); the enclave discarded this response without storing it"
        )


def _operation(value: object) -> LoginOperation:
    if not isinstance(value, str):
        raise TypeError(f"operation must be 'read' or 'write', not {type(value).__name__}")
    try:
        return LoginOperation(value)
    except ValueError:
        raise ValueError(f"operation must be 'read' or 'write', not {value[:40]!r}") from None


def _transports(values: Iterable[str]) -> list[AuthenticatorTransport]:
    out = []
    for value in values:
        try:
            out.append(AuthenticatorTransport(value))
        except ValueError:
            continue  # a transport newer than the library: a hint only, safe to drop
    return out


class PasskeyEnclave:
    """Passkey-gated keys: ``begin_*`` returns WebAuthn options for the client, ``finish_*``
    verifies the client's response and registers a credential, or releases or stores a key.

    ``kms``: seals keys at rest (a :class:`portal_core.kms.Pkcs11Kms`); the KEK
    ``key_name`` is created on first start if missing. ``store``: an
    :class:`~portal_core.enclave.store.EnclaveStore`. ``rp_id``: the relying party id (a
    domain). ``rp_name``: shown to users. ``origins``: the allowed origins (web origins on
    the RP id, ``android:apk-key-hash:...`` app origins). ``require_user_verification``:
    refuse responses without the UV flag (default: yes; a key release should need the
    user's PIN or biometric, not a touch). ``challenge_ttl``: seconds a challenge stays
    valid. ``attestation``: the attestation conveyance preference sent at registration
    (attestation statements are verified for integrity, not against vendor roots).
    ``clock``: seconds since the epoch (tests move time).

    Thread-safe: all state is in the store and the KMS.

    Raises:
        TypeError / ValueError: a bad argument (an origin not on the RP id, among others).
    """

    def __init__(
        self,
        kms: KeyedSealingKms,
        store: EnclaveStore,
        *,
        rp_id: str,
        rp_name: str,
        origins: Iterable[str],
        key_name: str = "enclave-passkey",
        require_user_verification: bool = True,
        challenge_ttl: float = 300.0,
        attestation: str = "none",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rp_id = _check_rp_id(rp_id)
        if not isinstance(rp_name, str) or not rp_name:
            raise ValueError("rp_name must be a non-empty str")
        self.rp_name = rp_name
        if isinstance(origins, str):
            raise TypeError("origins must be a list of origins, not one str")
        self.origins: tuple[str, ...] = tuple(_check_origin(o, self.rp_id) for o in origins)
        if not self.origins:
            raise ValueError("at least one origin is needed")
        if not isinstance(challenge_ttl, int | float) or not 1 <= challenge_ttl <= 3600:
            raise ValueError("challenge_ttl must be 1 to 3600 seconds")
        self.challenge_ttl = float(challenge_ttl)
        self.attestation = AttestationConveyancePreference(attestation)
        self.require_user_verification = bool(require_user_verification)
        self.key_name = key_name
        self._kms = kms
        # One rule for every sealing component: its key-encryption key is created on first
        # start (and a second process creating it at once is no error).
        kms.ensure_key(key_name)
        self._store = store
        self._clock = clock
        self._rp_id_hash = hashlib.sha256(self.rp_id.encode("utf-8")).digest()

    def __repr__(self) -> str:
        return (
            f"PasskeyEnclave(rp_id={self.rp_id!r}, origins={list(self.origins)!r}, "
            f"key_name={self.key_name!r}, "
            f"require_user_verification={self.require_user_verification})"
        )

    @property
    def _uv(self) -> UserVerificationRequirement:
        return (
            UserVerificationRequirement.REQUIRED
            if self.require_user_verification
            else UserVerificationRequirement.PREFERRED
        )

    # -- challenges -----------------------------------------------------------------------

    def _new_challenge(
        self,
        user: str,
        ceremony: Ceremony,
        operation: LoginOperation | None = None,
        slot: str | None = None,
    ) -> bytes:
        challenge = secrets.token_bytes(_CHALLENGE_LEN)
        now = self._clock()
        # Stored by hash: a copy of the store does not hold live challenges.
        self._store.add_challenge(
            ChallengeRecord(
                challenge_hash=hashlib.sha256(challenge).digest(),
                user_id=user,
                ceremony=ceremony,
                created_at=now,
                expires_at=now + self.challenge_ttl,
                operation=operation,
                slot=slot,
            ),
            purge_before=now,
        )
        return challenge

    def _take_challenge(
        self,
        user: str,
        challenge: bytes,
        ceremony: Ceremony,
        operation: LoginOperation | None = None,
        slot: str | None = None,
    ) -> bytes:
        """Spends the response's challenge before anything else is checked (WebAuthn L3
        §13.4.3: a challenge is used once), then checks whose and what it was: the user,
        the ceremony, and for a login the operation and slot it was issued for."""
        record = self._store.take_challenge(hashlib.sha256(challenge).digest())
        if record is None:
            raise ChallengeRejected(
                "the response's challenge is unknown or already used: each challenge from "
                "begin_registration or begin_login serves one finish"
            )
        if record.user_id != user:
            raise ChallengeRejected("the response's challenge was issued to another user")
        if record.ceremony != ceremony:
            raise ChallengeRejected(
                f"the response's challenge was issued for {record.ceremony.value}, "
                f"not {ceremony.value}"
            )
        if operation is not None:
            if record.operation is None:
                raise ChallengeRejected(
                    "the response's challenge was issued before logins named their operation "
                    "and slot: begin again"
                )
            if record.operation != operation or record.slot != slot:
                log.info(
                    "assertion refused for user %r: challenge issued for %s of slot %r, "
                    "presented for %s of slot %r",
                    user,
                    record.operation.value,
                    record.slot,
                    operation.value,
                    slot,
                )
                raise ChallengeRejected(
                    f"the response's challenge was issued to {record.operation.value} slot "
                    f"{record.slot!r}, not to {operation.value} slot {slot!r}: begin a login "
                    "for this operation and slot"
                )
        if self._clock() >= record.expires_at:
            raise ChallengeRejected(
                f"the response's challenge expired (challenges are valid for "
                f"{self.challenge_ttl:g} s): begin again"
            )
        return challenge

    # -- checks shared by both ceremonies ---------------------------------------------------

    def _check_client_data(self, client: CollectedClientData, expected_type: str) -> None:
        # WebAuthn L3 §7.1 and §7.2: the client data's type, origin and crossOrigin.
        if client.type != expected_type:
            raise VerificationFailed(f"clientDataJSON.type is not {expected_type!r}")
        if client.origin not in self.origins:
            raise OriginMismatch(
                f"origin {client.origin[:200]!r} is not one of the origins of RP {self.rp_id!r}"
            )
        if client.cross_origin:
            raise OriginMismatch(
                "the ceremony ran in a cross-origin frame, which this relying party refuses"
            )

    def _check_flags(self, auth: AuthenticatorData) -> None:
        # WebAuthn L3 §7.1 and §7.2: rpIdHash, then the UP and UV flags.
        if auth.rp_id_hash != self._rp_id_hash:
            raise RpIdMismatch(
                f"the authenticator data is scoped to another RP id, not {self.rp_id!r}"
            )
        if not auth.flags.up:
            raise UserPresenceMissing("the authenticator did not report user presence (UP)")
        if self.require_user_verification and not auth.flags.uv:
            raise UserVerificationMissing(
                "user verification is required and the authenticator did not verify the user "
                "(UV flag not set)"
            )

    # -- registration (WebAuthn L3 §7.1) ---------------------------------------------------

    def begin_registration(self, user: str, *, display_name: str | None = None) -> dict[str, Any]:
        """``PublicKeyCredentialCreationOptions`` (as JSON, WebAuthn L3 §5.4) for a new
        passkey of ``user``: a fresh challenge, the user's random handle, the user's
        existing credentials excluded, and the ``prf`` extension asked for.

        Raises:
            TypeError / ValueError: a bad user id.
        """
        check_user(user)
        record = self._store.ensure_user(user, secrets.token_bytes(_USER_HANDLE_LEN), self._clock())
        existing = self._store.list_credentials(user)
        challenge = self._new_challenge(user, Ceremony.REGISTRATION)
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_name=user,
            user_id=record.user_handle,
            user_display_name=display_name or user,
            challenge=challenge,
            timeout=int(self.challenge_ttl * 1000),
            attestation=self.attestation,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED, user_verification=self._uv
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(
                    id=c.credential_id, transports=_transports(c.transports) or None
                )
                for c in existing
            ],
            supported_pub_key_algs=[COSEAlgorithmIdentifier(a) for a in SUPPORTED_ALGORITHMS],
        )
        out = options_to_json_dict(options)
        # WebAuthn L3 §10.1.3 credProps, §10.1.4 prf: ask the authenticator to enable PRF
        # for this credential, so that PRF mode can be used with it.
        out["extensions"] = {"credProps": True, "prf": {}}
        return out

    def finish_registration(self, user: str, response: Any) -> CredentialInfo:
        """Verifies the ``navigator.credentials.create()`` response and registers the
        credential to ``user``.

        Raises:
            MalformedResponse, ChallengeRejected, OriginMismatch, RpIdMismatch,
            UserPresenceMissing, UserVerificationMissing, PrfOutputExposed,
            VerificationFailed (attestation or algorithm refused),
            CredentialAlreadyRegistered.
        """
        check_user(user)
        data = _as_dict(response)
        _refuse_prf_results(data)
        try:
            credential = parse_registration_credential_json(data)
            client = parse_client_data_json(credential.response.client_data_json)
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise MalformedResponse("the registration response does not parse") from None
        challenge = self._take_challenge(user, client.challenge, Ceremony.REGISTRATION)
        self._check_client_data(client, "webauthn.create")
        try:
            attestation = parse_attestation_object(credential.response.attestation_object)
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise MalformedResponse("the attestation object does not parse") from None
        self._check_flags(attestation.auth_data)
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=list(self.origins),
                require_user_presence=True,
                require_user_verification=self.require_user_verification,
                supported_pub_key_algs=[COSEAlgorithmIdentifier(a) for a in SUPPORTED_ALGORITHMS],
            )
        except InvalidRegistrationResponse as e:
            log.info("registration refused for user %r: %s", user, e)
            raise VerificationFailed(f"the registration response does not verify: {e}") from None
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise MalformedResponse("the registration response does not parse") from None
        if not 1 <= len(verified.credential_id) <= _MAX_CREDENTIAL_ID:
            raise VerificationFailed("the credential id is empty or longer than 1023 bytes")
        ext = data.get("clientExtensionResults")
        prf = ext.get("prf") if isinstance(ext, Mapping) else None
        record = CredentialRecord(
            credential_id=verified.credential_id,
            user_id=user,
            public_key=verified.credential_public_key,
            alg=int(decode_credential_public_key(verified.credential_public_key).alg),
            sign_count=verified.sign_count,
            aaguid=verified.aaguid,
            fmt=str(getattr(verified.fmt, "value", verified.fmt)),
            transports=tuple(
                str(getattr(t, "value", t)) for t in credential.response.transports or ()
            ),
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
            prf_salt=secrets.token_bytes(_PRF_SALT_LEN),
            prf_enabled=isinstance(prf, Mapping) and prf.get("enabled") is True,
            created_at=self._clock(),
        )
        self._store.add_credential(record)
        log.info("passkey %s registered for user %r", _short_id(record.credential_id), user)
        return CredentialInfo.of(record)

    # -- authentication (WebAuthn L3 §7.2) -------------------------------------------------

    def begin_login(
        self, user: str, *, operation: LoginOperation | str, slot: str = DEFAULT_SLOT
    ) -> dict[str, Any]:
        """``PublicKeyCredentialRequestOptions`` (as JSON, WebAuthn L3 §5.5) for one login:
        a fresh challenge, the user's credentials, and for each the PRF input to evaluate
        (``extensions.prf.evalByCredential``, WebAuthn L3 §10.1.4).

        The challenge is bound to ``operation`` (``"read"`` or ``"write"``) and ``slot``:
        only :meth:`finish_login_read` (for READ) or :meth:`finish_login_write` (for
        WRITE) of that slot accepts the assertion made on it.

        Raises:
            NoCredentials: the user has registered no passkey.
            TypeError / ValueError: a bad user, operation or slot.
        """
        check_user(user)
        check_slot(slot)
        operation = _operation(operation)
        credentials = self._store.list_credentials(user)
        if not credentials:
            raise NoCredentials(f"user {user!r} has no registered passkey: register one first")
        challenge = self._new_challenge(user, Ceremony.AUTHENTICATION, operation, slot)
        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=challenge,
            timeout=int(self.challenge_ttl * 1000),
            allow_credentials=[
                PublicKeyCredentialDescriptor(
                    id=c.credential_id, transports=_transports(c.transports) or None
                )
                for c in credentials
            ],
            user_verification=self._uv,
        )
        out = options_to_json_dict(options)
        out["extensions"] = {
            "prf": {
                "evalByCredential": {
                    bytes_to_base64url(c.credential_id): {"first": bytes_to_base64url(c.prf_salt)}
                    for c in credentials
                }
            }
        }
        return out

    def _assert(
        self, user: str, response: Any, operation: LoginOperation, slot: str
    ) -> CredentialRecord:
        """Verifies an assertion for ``user`` made on a challenge issued for ``operation``
        of ``slot`` (WebAuthn L3 §7.2) and advances the credential's counter; returns the
        credential."""
        data = _as_dict(response)
        _refuse_prf_results(data)
        try:
            credential = parse_authentication_credential_json(data)
            client = parse_client_data_json(credential.response.client_data_json)
            auth = parse_authenticator_data(credential.response.authenticator_data)
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise MalformedResponse("the authentication response does not parse") from None
        challenge = self._take_challenge(
            user, client.challenge, Ceremony.AUTHENTICATION, operation, slot
        )
        # WebAuthn L3 §7.2: the credential must be one of this user's, and a user handle, if
        # the response has one, this user's.
        record = self._store.get_credential(credential.raw_id)
        if record is None:
            raise UnknownCredential(
                f"credential {_short_id(credential.raw_id)} is not registered with this enclave"
            )
        if record.user_id != user:
            log.info("assertion refused: credential of another user presented for %r", user)
            raise CredentialNotOwned(
                f"credential {_short_id(credential.raw_id)} is not registered to user {user!r}"
            )
        handle = credential.response.user_handle
        if handle is not None:
            owner = self._store.get_user(user)
            if owner is None or not hmac.compare_digest(handle, owner.user_handle):
                raise CredentialNotOwned("the response's user handle is not this user's")
        self._check_client_data(client, "webauthn.get")
        self._check_flags(auth)
        # WebAuthn L3 §7.2 and §6.1.1: a counter that is kept must increase; 0 and 0 means the
        # authenticator keeps none.
        if (auth.sign_count or record.sign_count) and auth.sign_count <= record.sign_count:
            log.warning(
                "assertion refused: sign count of credential %s did not increase (%d <= %d)",
                _short_id(record.credential_id),
                auth.sign_count,
                record.sign_count,
            )
            raise SignCountNotIncreasing(
                f"the authenticator's signature counter ({auth.sign_count}) is not above the "
                f"last one seen ({record.sign_count}): a cloned authenticator or a replay"
            )
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=list(self.origins),
                credential_public_key=record.public_key,
                credential_current_sign_count=record.sign_count,
                require_user_verification=self.require_user_verification,
            )
        except InvalidAuthenticationResponse as e:
            log.info("assertion refused for user %r: %s", user, e)
            raise VerificationFailed(f"the assertion does not verify: {e}") from None
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise MalformedResponse("the authentication response does not parse") from None
        self._advance_counter(record, verified.new_sign_count, verified.credential_backed_up)
        return record

    def _advance_counter(self, record: CredentialRecord, new: int, backed_up: bool) -> None:
        """Stores the new counter by compare-and-set: of two assertions verified against
        the same stored counter, the one whose counter is no longer above it loses."""
        expected = record.sign_count
        while True:
            if self._store.update_sign_count(
                record.credential_id,
                expected=expected,
                new=new,
                backed_up=backed_up,
                now=self._clock(),
            ):
                return
            current = self._store.get_credential(record.credential_id)
            if current is None:
                raise UnknownCredential(
                    f"credential {_short_id(record.credential_id)} was removed during the login"
                )
            if (new or current.sign_count) and new <= current.sign_count:
                raise SignCountNotIncreasing(
                    f"the authenticator's signature counter ({new}) is not above the last one "
                    f"seen ({current.sign_count}): a concurrent use of the same counter value"
                )
            expected = current.sign_count

    def _context(self, user: str, credential_id: bytes, slot: str, mode: KeyMode) -> dict[str, str]:
        return {
            "purpose": _KEY_PURPOSE,
            "user": user,
            "credential": bytes_to_base64url(credential_id),
            "slot": slot,
            "mode": mode.value,
        }

    def finish_login_read(self, user: str, response: Any, *, slot: str = DEFAULT_SLOT) -> bytes:
        """Verifies the assertion and returns the key stored in ``slot`` under the asserted
        credential: the key itself (``SERVER`` mode) or the device's wrapped value (``PRF``
        mode, for :func:`portal_core.enclave.prf.unwrap_key`). The assertion must answer a
        challenge from ``begin_login(user, operation="read", slot=slot)``.

        Raises:
            every refusal of :meth:`finish_registration` that applies to assertions
            (ChallengeRejected also for a challenge issued for a write, or for another
            slot);
            UnknownCredential; CredentialNotOwned; SignCountNotIncreasing;
            KeyNotStored: nothing stored in this slot under this credential;
            SealedRecordInvalid: the stored record was altered or moved;
            portal_core.kms errors: the HSM failed.
        """
        check_user(user)
        check_slot(slot)
        record = self._assert(user, response, LoginOperation.READ, slot)
        stored = self._store.get_key(user, record.credential_id, slot)
        if stored is None:
            raise KeyNotStored(
                f"no key is stored in slot {slot!r} for user {user!r} under passkey "
                f"{_short_id(record.credential_id)} (each passkey has its own copy: it may "
                "have been written with another of the user's passkeys)"
            )
        key = open_sealed(
            self._kms,
            stored.sealed,
            self._context(user, record.credential_id, slot, stored.mode),
            "passkey key",
        )
        log.debug("key released: user %r, slot %r", user, slot)
        return key

    def finish_login_write(
        self,
        user: str,
        response: Any,
        key: Any,
        *,
        slot: str = DEFAULT_SLOT,
        mode: KeyMode | str = KeyMode.SERVER,
    ) -> None:
        """Verifies the assertion and stores ``key`` in ``slot`` under the asserted
        credential, sealed under the KMS KEK, replacing what was there. The assertion must
        answer a challenge from ``begin_login(user, operation="write", slot=slot)``.

        In ``PRF`` mode ``key`` must be the device's wrapped value
        (:func:`portal_core.enclave.prf.wrap_key`): a raw key is refused, since storing it
        would silently give the server what PRF mode keeps from it.

        Raises:
            TypeError / ValueError: a bad key (checked before the challenge is spent);
            the refusals of :meth:`finish_login_read`, but KeyNotStored.
        """
        check_user(user)
        check_slot(slot)
        mode = KeyMode(mode)
        try:
            value = bytes(memoryview(key).cast("B"))
        except TypeError:
            raise TypeError(
                f"the key must be a bytes-like object, not {type(key).__name__}"
            ) from None
        if not 1 <= len(value) <= _MAX_KEY:
            raise ValueError(f"the key must be 1 to {_MAX_KEY} bytes")
        if mode is KeyMode.PRF:
            try:
                wrapped_by = envelope.inspect(value)["key_id"]
            except (InvalidEnvelope, KeyError, TypeError):
                wrapped_by = None
            if wrapped_by != PRF_KEY_ID:
                raise ValueError(
                    "in PRF mode the key must be the device's wrapped value "
                    "(portal_core.enclave.prf.wrap_key), not a raw key"
                )
        record = self._assert(user, response, LoginOperation.WRITE, slot)
        now = self._clock()
        sealed = self._kms.seal(
            self.key_name, value, context=self._context(user, record.credential_id, slot, mode)
        )
        self._store.put_key(
            KeyRecord(
                user_id=user,
                credential_id=record.credential_id,
                slot=slot,
                mode=mode,
                sealed=sealed,
                created_at=now,
                updated_at=now,
            )
        )
        log.debug("key stored: user %r, slot %r, mode %s", user, slot, mode.value)

    # -- management (authenticated by the caller's session, not by a passkey) -------------

    def has_credentials(self, user: str) -> bool:
        """Whether ``user`` has registered a passkey."""
        return bool(self._store.list_credentials(check_user(user)))

    def credentials(self, user: str) -> list[CredentialInfo]:
        """The user's registered passkeys."""
        return [CredentialInfo.of(c) for c in self._store.list_credentials(check_user(user))]

    def remove_credential(self, user: str, credential_id: bytes) -> bool:
        """Unregisters one of the user's passkeys and deletes the keys stored under it."""
        return self._store.delete_credential(check_user(user), bytes(credential_id))

    def delete_key(self, user: str, *, slot: str = DEFAULT_SLOT) -> int:
        """Deletes the user's keys in ``slot`` (under every passkey); how many there were.

        Deleting needs no assertion (it releases nothing), so over a network it must be
        authenticated by the caller's own session.
        """
        return self._store.delete_keys(check_user(user), check_slot(slot))

    @staticmethod
    def credential_id_of(response: Any) -> bytes:
        """The credential id (``rawId``) a response names, without verifying anything.

        Raises:
            MalformedResponse: no valid ``rawId``.
        """
        data = _as_dict(response)
        raw = data.get("rawId")
        if not isinstance(raw, str):
            raise MalformedResponse("the response has no rawId")
        try:
            return base64url_to_bytes(raw)
        except ValueError:
            raise MalformedResponse("the response's rawId is not base64url") from None
