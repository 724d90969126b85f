"""A software WebAuthn authenticator and client, for the enclave tests.

It produces what a browser hands a relying party: ``PublicKeyCredential.toJSON()`` with a
real ``clientDataJSON`` (WebAuthn L3 §5.8.1), authenticator data (§6.1: rpIdHash, flags,
signature counter, attested credential data with a COSE_Key, extensions), an attestation
object in the ``packed`` (self attestation, §8.2) or ``none`` (§8.7) format, and
assertion signatures over ``authenticatorData || SHA-256(clientDataJSON)`` (§6.3.3) with
P-256 ECDSA (COSE -7) or Ed25519 (COSE -8) keys from ``cryptography``. CBOR comes from
``cbor2``, in CTAP2's canonical form.

The PRF extension (§10.1.4) is computed as a CTAP2 authenticator with ``hmac-secret``
does (CTAP 2.1): the client hashes each input as SHA-256("WebAuthn PRF" || 0x00 ||
input), the authenticator returns HMAC-SHA-256(CredRandom, hashed input); the output goes
to ``clientExtensionResults.prf.results.first`` as a browser puts it, and an encrypted
copy into the authenticator data's ``hmac-secret`` extension.

Every field a relying party checks can be overridden per call, so that each refusal is
tested with an otherwise valid, correctly signed response.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7

ES256 = -7
EDDSA = -8
ES384 = -35  # offered by no enclave here: for the "unsupported algorithm" refusal

# Authenticator data flags (WebAuthn L3 §6.1).
UP, UV, BE, BS, AT, ED = 0x01, 0x04, 0x08, 0x10, 0x40, 0x80

AAGUID = bytes.fromhex("00112233445566778899aabbccddeeff")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def prf_eval(cred_random: bytes, prf_input: bytes) -> bytes:
    """The PRF output for an input, as client and authenticator compute it together."""
    salt = hashlib.sha256(b"WebAuthn PRF\x00" + prf_input).digest()
    return hmac.new(cred_random, salt, hashlib.sha256).digest()


class Refused(Exception):
    """The authenticator refused, as a real one would (excluded credential, none usable)."""


@dataclass
class SoftCredential:
    credential_id: bytes
    rp_id: str
    user_handle: bytes
    alg: int
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    cred_random: bytes
    sign_count: int = 0

    def cose_key(self) -> bytes:
        """The credential public key as a COSE_Key (RFC 9053; WebAuthn L3 §6.5.1.1)."""
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):  # ES256, ES384
            numbers = self.private_key.public_key().public_numbers()
            size = 32 if self.alg == ES256 else 48
            key = {
                1: 2,  # kty: EC2
                3: self.alg,
                -1: 1 if self.alg == ES256 else 2,  # crv: P-256 or P-384
                -2: numbers.x.to_bytes(size, "big"),
                -3: numbers.y.to_bytes(size, "big"),
            }
        else:
            raw = self.private_key.public_key().public_bytes_raw()
            key = {1: 1, 3: EDDSA, -1: 6, -2: raw}  # kty OKP, crv Ed25519
        return cbor2.dumps(key, canonical=True)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):  # EDDSA
            return self.private_key.sign(data)
        hash_ = hashes.SHA256() if self.alg == ES256 else hashes.SHA384()
        return self.private_key.sign(data, ec.ECDSA(hash_))


class SoftAuthenticator:
    """A platform authenticator plus the client around it (the ``PasskeyDevice`` role).

    ``alg``: ES256 or EDDSA for new credentials. ``attestation``: ``"packed"`` or
    ``"none"``. ``origin``: the origin the client reports. ``counter``: keep a signature
    counter (False: always 0). ``uv``: verify the user. ``prf``: support hmac-secret.
    """

    def __init__(
        self,
        *,
        alg: int = ES256,
        attestation: str = "packed",
        origin: str = "https://example.com",
        counter: bool = True,
        uv: bool = True,
        prf: bool = True,
        backup_eligible: bool = True,
    ) -> None:
        self.alg = alg
        self.attestation = attestation
        self.origin = origin
        self.counter = counter
        self.uv = uv
        self.prf = prf
        self.backup_eligible = backup_eligible
        self.credentials: dict[bytes, SoftCredential] = {}
        # The client-authenticator shared secret that encrypts hmac-secret outputs (CTAP
        # 2.1, PIN/UV auth protocol 2): the relying party never has it.
        self._shared_secret = os.urandom(32)
        self.last_prf_output: bytes | None = None

    def _flags(self, *, up: bool, uv: bool, extra: int = 0) -> int:
        flags = extra
        if up:
            flags |= UP
        if uv:
            flags |= UV
        if self.backup_eligible:
            flags |= BE | BS
        return flags

    def _client_data(
        self, kind: str, challenge: str, origin: str | None, cross_origin: bool
    ) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": cross_origin,
            },
            separators=(",", ":"),
        ).encode()

    # -- navigator.credentials.create() ---------------------------------------------------

    def create(
        self,
        options: Mapping[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        up: bool = True,
        uv: bool | None = None,
        challenge: str | None = None,
        attestation: str | None = None,
        alg: int | None = None,
        credential_id: bytes | None = None,
        client_data_type: str = "webauthn.create",
        cross_origin: bool = False,
        leak_prf: bytes | None = None,
    ) -> dict[str, Any]:
        rp = rp_id or options["rp"]["id"]
        for excluded in options.get("excludeCredentials", []):
            if unb64url(excluded["id"]) in self.credentials:
                raise Refused("InvalidStateError: a credential for this user is on the device")
        alg = alg if alg is not None else self.alg
        offered = [p["alg"] for p in options["pubKeyCredParams"]]
        if alg not in offered:
            raise Refused(f"NotSupportedError: alg {alg} not offered")
        if alg == ES256:
            private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
                ec.generate_private_key(ec.SECP256R1())
            )
        elif alg == ES384:
            private_key = ec.generate_private_key(ec.SECP384R1())
        else:
            private_key = ed25519.Ed25519PrivateKey.generate()
        cred = SoftCredential(
            credential_id=credential_id or os.urandom(32),
            rp_id=rp,
            user_handle=unb64url(options["user"]["id"]),
            alg=alg,
            private_key=private_key,
            cred_random=os.urandom(32),
        )
        wants_prf = self.prf and "prf" in options.get("extensions", {})
        extensions = cbor2.dumps({"hmac-secret": True}) if wants_prf else b""
        flags = self._flags(
            up=up, uv=self.uv if uv is None else uv, extra=AT | (ED if extensions else 0)
        )
        if self.counter:
            cred.sign_count = 0
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([flags])
            + cred.sign_count.to_bytes(4, "big")
            + AAGUID
            + len(cred.credential_id).to_bytes(2, "big")
            + cred.credential_id
            + cred.cose_key()
            + extensions
        )
        client_data = self._client_data(
            client_data_type, challenge or options["challenge"], origin, cross_origin
        )
        fmt = attestation or self.attestation
        if fmt == "packed":
            # Self attestation (§8.2): signed by the credential key itself, no x5c.
            signature = cred.sign(auth_data + hashlib.sha256(client_data).digest())
            statement: dict[str, Any] = {"alg": alg, "sig": signature}
        else:
            statement = {}
        attestation_object = cbor2.dumps(
            {"fmt": fmt, "attStmt": statement, "authData": auth_data}, canonical=True
        )
        self.credentials[cred.credential_id] = cred
        ext_results: dict[str, Any] = {"credProps": {"rk": True}}
        if wants_prf:
            ext_results["prf"] = {"enabled": True}
        if leak_prf is not None:
            ext_results["prf"] = {"enabled": True, "results": {"first": b64url(leak_prf)}}
        return {
            "id": b64url(cred.credential_id),
            "rawId": b64url(cred.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": ext_results,
        }

    # -- navigator.credentials.get() ------------------------------------------------------

    def get(
        self,
        options: Mapping[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        up: bool = True,
        uv: bool | None = None,
        challenge: str | None = None,
        credential_id: bytes | None = None,
        sign_count: int | None = None,
        user_handle: bytes | bool | None = True,
        client_data_type: str = "webauthn.get",
        cross_origin: bool = False,
    ) -> dict[str, Any]:
        if credential_id is None:
            allowed = [unb64url(c["id"]) for c in options.get("allowCredentials", [])]
            usable = [c for c in allowed if c in self.credentials]
            if not usable:
                raise Refused("NotAllowedError: no credential on this device is allowed")
            credential_id = usable[0]
        cred = self.credentials[credential_id]
        rp = rp_id or options.get("rpId") or cred.rp_id
        if sign_count is None:
            if self.counter:
                cred.sign_count += 1
            sign_count = cred.sign_count
        ext_results: dict[str, Any] = {}
        extensions = b""
        self.last_prf_output = None
        prf = options.get("extensions", {}).get("prf")
        if self.prf and prf:
            by_credential = prf.get("evalByCredential", {})
            values = by_credential.get(b64url(credential_id)) or prf.get("eval")
            if values:
                output = prf_eval(cred.cred_random, unb64url(values["first"]))
                self.last_prf_output = output
                ext_results["prf"] = {"results": {"first": b64url(output)}}
                # What the authenticator returns is encrypted for the client (CTAP 2.1,
                # PIN/UV auth protocol 2: IV || AES-256-CBC); the RP sees only this.
                iv = os.urandom(16)
                encryptor = Cipher(algorithms.AES(self._shared_secret), modes.CBC(iv)).encryptor()
                padder = PKCS7(128).padder()
                padded = padder.update(output) + padder.finalize()
                encrypted = iv + encryptor.update(padded) + encryptor.finalize()
                extensions = cbor2.dumps({"hmac-secret": encrypted})
        flags = self._flags(up=up, uv=self.uv if uv is None else uv, extra=ED if extensions else 0)
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([flags])
            + sign_count.to_bytes(4, "big")
            + extensions
        )
        client_data = self._client_data(
            client_data_type, challenge or options["challenge"], origin, cross_origin
        )
        signature = cred.sign(auth_data + hashlib.sha256(client_data).digest())
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if user_handle is True:
            response["userHandle"] = b64url(cred.user_handle)
        elif isinstance(user_handle, bytes):
            response["userHandle"] = b64url(user_handle)
        return {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": response,
            "clientExtensionResults": ext_results,
        }
