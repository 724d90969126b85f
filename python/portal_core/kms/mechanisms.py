"""The wrap mechanisms: how the HSM wraps a 32-byte intermediate key under a KEK, and unwraps it.

A profile (:mod:`portal_core.kms.profiles`) names the mechanism new blobs use and the vendor's
numbers and quirks (who makes the GCM IV, which errors mean a failed tag); a blob names the
mechanism it was wrapped with, and opening follows the blob. Each mechanism is one class
below, registered by its profile name in :data:`_BY_NAME` and by its blob id in
:data:`_BY_BLOB_ID`: a vendor that needs a new one adds it here, a vendor that needs new
numbers or quirks adds a profile.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11

from portal_core.exceptions import InvalidTag
from portal_core.kms import blob
from portal_core.kms._cryptoki import ffi
from portal_core.kms.blob import Header
from portal_core.kms.errors import HsmConfigError, MalformedBlob
from portal_core.kms.pool import PooledSession
from portal_core.kms.profiles import Profile

__all__ = ["AesGcmWrap", "AesKwpWrap", "KeyWrap", "Mechanisms", "vendor_mechanism"]


def vendor_mechanism(number: int) -> Mechanism:
    """python-pkcs11 accepts only ``Mechanism`` members; vendor numbers get a stand-in member."""
    try:
        return Mechanism(number)
    except ValueError:
        member = int.__new__(Mechanism, number)
        member._name_ = f"VENDOR_{number:#x}"
        member._value_ = number
        return member


class KeyWrap:
    """One way of wrapping an intermediate key under a KEK, with a profile's parameters.

    ``blob_id`` is the wrap byte of the blob format; ``capabilities`` are what a KEK used
    with it must allow (and nothing more).
    """

    blob_id: ClassVar[int]
    capabilities: ClassVar[MechanismFlag]

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def wrap(self, ps: PooledSession, kek: Any, prefix: bytes, intermediate: bytes) -> bytes:
        """The wrapped form of ``intermediate`` stored in the blob header (bound to ``prefix``
        where the mechanism takes associated data)."""
        raise NotImplementedError

    def unwrap(self, ps: PooledSession, kek: Any, header: Header) -> bytes:
        """The intermediate key wrapped in ``header``; python-pkcs11 errors pass through."""
        raise NotImplementedError


class AesGcmWrap(KeyWrap):
    """C_Encrypt / C_Decrypt with AES-GCM, the blob prefix as AAD, a 128-bit tag.

    The IV comes from the host, or from the HSM (written into ``CK_GCM_PARAMS.pIv``, or
    appended to the output), as the profile says. The wrapped form is ``iv_len || IV ||
    ciphertext || tag`` (``blob.gcm_wrapped``).
    """

    blob_id = blob.WRAP_AES_GCM
    capabilities = MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT

    def _call(self, kek: Any, encrypt: bool, data: bytes, aad: bytes, iv: bytes) -> bytes:
        """C_Encrypt / C_Decrypt with raw CK_GCM_PARAMS; encrypting returns the IV buffer as
        the HSM left it, then the output. The IV buffer is writable: some HSMs write the IV
        they generate into it."""
        iv_buf = bytearray(iv)
        iv_ptr = ffi.from_buffer("CK_BYTE[]", iv_buf, require_writable=True)
        aad_ptr = ffi.from_buffer("CK_BYTE[]", aad)
        params = ffi.new(
            "CK_GCM_PARAMS *",
            {
                "pIv": iv_ptr,
                "ulIvLen": len(iv),
                "ulIvBits": len(iv) * 8,
                "pAAD": aad_ptr,
                "ulAADLen": len(aad),
                "ulTagBits": blob.GCM_TAG_LEN * 8,
            },
        )
        mechanism = vendor_mechanism(self.profile.gcm_mechanism)
        op = kek.encrypt if encrypt else kek.decrypt
        # iv_ptr and aad_ptr stay referenced until the call returns: the HSM reads through
        # the pointers inside the parameter bytes.
        out: bytes = op(data, mechanism=mechanism, mechanism_param=bytes(ffi.buffer(params)))
        del iv_ptr, aad_ptr
        if encrypt:
            return bytes(iv_buf) + out
        return out

    def wrap(self, ps: PooledSession, kek: Any, prefix: bytes, intermediate: bytes) -> bytes:
        p = self.profile
        iv_len = p.gcm_iv_len
        iv = os.urandom(iv_len) if p.gcm_iv == "host" else bytes(iv_len)
        result = self._call(kek, True, intermediate, prefix, iv)
        iv, out = result[:iv_len], result[iv_len:]
        want = len(intermediate) + blob.GCM_TAG_LEN
        if p.gcm_iv == "hsm-appended":
            if len(out) != want + iv_len:
                raise HsmConfigError(
                    f"profile {p.name!r} expects the HSM to append a {iv_len}-byte IV to AES-GCM "
                    f"output; got {len(out)} bytes for {len(intermediate)} (wrong profile?)"
                )
            out, iv = out[:want], out[want:]
        if len(out) != want:
            raise HsmConfigError(f"AES-GCM returned {len(out)} bytes, expected {want}")
        if p.gcm_iv != "host" and iv == bytes(iv_len):
            raise HsmConfigError(
                f"profile {p.name!r} expects the HSM to generate the AES-GCM IV, but it used the "
                "all-zero placeholder (wrong profile?)"
            )
        return blob.gcm_wrapped(iv, out)

    def unwrap(self, ps: PooledSession, kek: Any, header: Header) -> bytes:
        iv, ciphertext = blob.gcm_unwrapped(header.wrapped)
        return self._call(kek, False, ciphertext, header.prefix, iv)


class AesKwpWrap(KeyWrap):
    """C_WrapKey / C_UnwrapKey with AES key wrap with padding (RFC 5649). It takes no AAD: the
    prefix is bound by the derivation of the envelope key instead (docs/kms.md)."""

    blob_id = blob.WRAP_AES_KWP
    capabilities = MechanismFlag.WRAP | MechanismFlag.UNWRAP

    def wrap(self, ps: PooledSession, kek: Any, prefix: bytes, intermediate: bytes) -> bytes:
        # C_WrapKey takes a key object: import the intermediate key as a short-lived,
        # extractable session object, wrap it, destroy it.
        temp = ps.session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: intermediate,
                Attribute.TOKEN: False,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
                Attribute.ENCRYPT: False,
                Attribute.DECRYPT: False,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
            }
        )
        try:
            wrapped: bytes = kek.wrap_key(
                temp, mechanism=vendor_mechanism(self.profile.kwp_mechanism)
            )
            return wrapped
        finally:
            temp.destroy()

    def unwrap(self, ps: PooledSession, kek: Any, header: Header) -> bytes:
        obj = kek.unwrap_key(
            ObjectClass.SECRET_KEY,
            KeyType.AES,
            header.wrapped,
            mechanism=vendor_mechanism(self.profile.kwp_mechanism),
            store=False,
            capabilities=MechanismFlag(0),
            template={
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
            },
        )
        try:
            return bytes(obj[Attribute.VALUE])
        finally:
            obj.destroy()


_BY_NAME: dict[str, type[KeyWrap]] = {"aes-gcm": AesGcmWrap, "aes-kwp": AesKwpWrap}
_BY_BLOB_ID: dict[int, type[KeyWrap]] = {cls.blob_id: cls for cls in _BY_NAME.values()}


class Mechanisms:
    """The wrap mechanisms of one profile: :attr:`sealing` for new intermediate keys, and
    :meth:`unwrap` for any blob's, by the mechanism the blob names."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._by_id = {blob_id: cls(profile) for blob_id, cls in _BY_BLOB_ID.items()}
        self.sealing: KeyWrap = self._by_id[_BY_NAME[profile.wrap].blob_id]

    def wrap(self, ps: PooledSession, kek: Any, prefix: bytes, intermediate: bytes) -> bytes:
        """``intermediate`` wrapped with the profile's mechanism (see :meth:`KeyWrap.wrap`)."""
        return self.sealing.wrap(ps, kek, prefix, intermediate)

    def unwrap(self, ps: PooledSession, kek: Any, header: Header) -> bytes:
        """The intermediate key of ``header``, by the mechanism the header names.

        Raises:
            InvalidTag: the HSM refused the wrapped key as the profile's ``tag_failures``
                say it does, or it unwrapped to a key of the wrong length.
        """
        mechanism = self._by_id.get(header.wrap)
        if mechanism is None:  # Header.parse refuses unknown ids; kept as a guard
            raise MalformedBlob(f"unknown wrap mechanism {header.wrap}")
        try:
            intermediate = mechanism.unwrap(ps, kek, header)
        except p11.PKCS11Error as e:
            if type(e).__name__ in self.profile.tag_failures:
                raise InvalidTag() from None
            raise
        if len(intermediate) != blob.INTERMEDIATE_KEY_LEN:
            raise InvalidTag()
        return intermediate
