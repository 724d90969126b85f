"""``Pkcs11Kms.self_test``: does the HSM behave as its profile says? (``portal-core hsm check``)"""

from __future__ import annotations

import os
from typing import Any

from pkcs11 import Attribute, KeyType
from pkcs11 import exceptions as p11

from portal_core.exceptions import InvalidTag
from portal_core.kms import blob
from portal_core.kms.blob import Header
from portal_core.kms.errors import HsmConfigError
from portal_core.kms.mechanisms import Mechanisms
from portal_core.kms.pool import PooledSession, SessionPool

__all__ = ["run_self_test"]


def run_self_test(pool: SessionPool, mechanisms: Mechanisms, token_label: str) -> dict[str, Any]:
    """Checks the HSM on a throwaway session key; returns a report (no secret in it).

    Generates a non-token KEK that must be sensitive and non-extractable, checks that its
    value cannot be read, wraps and unwraps an intermediate key through the profile's
    mechanism (including the IV handling), checks that a tampered wrap is refused, and
    destroys the key. Nothing is stored in the token.

    Raises:
        HsmConfigError: the HSM does not behave as the profile expects.
        HsmUnavailable / HsmAuthError: as any call.
    """
    profile = mechanisms.profile
    wrap = mechanisms.sealing
    prefix = blob.make_prefix("self-test", 1, wrap.blob_id)
    intermediate = os.urandom(blob.INTERMEDIATE_KEY_LEN)

    def check(ps: PooledSession) -> dict[str, Any]:
        kek = ps.session.generate_key(
            KeyType.AES,
            256,
            label="portal-kms-self-test",
            store=False,
            capabilities=wrap.capabilities,
            template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
        )
        try:
            try:
                kek[Attribute.VALUE]
                raise HsmConfigError("the HSM let a sensitive key's value be read")
            except p11.AttributeSensitive:
                pass
            wrapped = mechanisms.wrap(ps, kek, prefix, intermediate)
            header = Header.parse(blob.make_header(prefix, wrapped))
            if mechanisms.unwrap(ps, kek, header) != intermediate:
                raise HsmConfigError("unwrapping returned a different key")
            tampered = bytearray(wrapped)
            tampered[-1] ^= 1
            try:
                mechanisms.unwrap(ps, kek, Header.parse(blob.make_header(prefix, bytes(tampered))))
                raise HsmConfigError("the HSM unwrapped a tampered key")
            except InvalidTag:
                pass
        finally:
            kek.destroy()
        return {
            "profile": profile.name,
            "profile_tested_by_project": profile.tested,
            "wrap": blob.WRAP_NAMES[wrap.blob_id],
            "gcm_iv": profile.gcm_iv if wrap.blob_id == blob.WRAP_AES_GCM else None,
            "wrapped_key_bytes": len(wrapped),
            "library": pool.path,
            "token_label": token_label,
        }

    return pool.run(check, "self-test")
