"""The objects the KMS keeps in a token, and their templates (docs/kms.md, "Objects in the token").

* KEK version N of ``name``: an AES-256 secret key labelled ``portal-kek:<name>:v<N>``, with
  ``CKA_ID`` ``portal-kek:<name>``; token, private, sensitive, never extractable, not
  modifiable, no derive; its capabilities (encrypt/decrypt or wrap/unwrap) are set by the
  wrap mechanism (:mod:`portal_core.kms.mechanisms`).
* The retirement policy of ``name``: a private data object of application
  ``portal-core kms`` labelled ``portal-kek-policy:<name>``, value
  ``{"seq": n, "min_decryption_version": v}``.

Key names never contain ``:`` (``blob.check_name``), so labels parse back unambiguously. The
functions here run on one borrowed session (:class:`~portal_core.kms.pool.PooledSession`);
they hold no state of their own.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11

from portal_core.kms.errors import HsmConfigError, KeyNotFound
from portal_core.kms.pool import PooledSession, SessionPool

__all__ = [
    "APPLICATION",
    "KEK_TEMPLATE",
    "KeyVersions",
    "destroy_kek",
    "find_kek",
    "generate_kek",
    "kek_label",
    "key_names",
    "policy_label",
    "read_versions",
    "write_policy",
]

log = logging.getLogger("portal_core.kms")

APPLICATION = "portal-core kms"
_KEK_ID_PREFIX = b"portal-kek:"
_POLICY_PREFIX = "portal-kek-policy:"

# Every KEK version: kept in the token, visible only after login, its value never readable
# or exportable, its attributes fixed, and usable for nothing but its wrap mechanism.
KEK_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.MODIFIABLE: False,
    Attribute.DERIVE: False,
}


def kek_label(name: str, version: int) -> str:
    return f"portal-kek:{name}:v{version}"


def policy_label(name: str) -> str:
    return f"{_POLICY_PREFIX}{name}"


@dataclass(slots=True)
class KeyVersions:
    """The versions of a key the token holds and its minimum decryption version, as read at
    ``fetched`` (``time.monotonic()``)."""

    versions: tuple[int, ...]
    min_decryption_version: int
    fetched: float

    @property
    def newest(self) -> int:
        return self.versions[-1]


def find_kek(pool: SessionPool, ps: PooledSession, name: str, version: int) -> Any:
    """The KEK object of ``name`` version ``version``; its handle is cached in ``ps``.

    Raises:
        KeyNotFound: no such version (after checking the session did not lose its login).
        HsmConfigError: two objects carry the label.
    """
    handle = ps.keys.get((name, version))
    if handle is None:
        try:
            handle = ps.session.get_key(
                object_class=ObjectClass.SECRET_KEY,
                key_type=KeyType.AES,
                label=kek_label(name, version),
            )
        except p11.NoSuchKey:
            pool.check_login(ps)
            raise KeyNotFound(f"the token holds no version {version} of key {name!r}") from None
        except p11.MultipleObjectsReturned:
            raise HsmConfigError(
                f"the token holds two objects labelled {kek_label(name, version)!r} "
                "(concurrent rotations?): destroy the one created last"
            ) from None
        ps.keys[(name, version)] = handle
    return handle


def read_versions(pool: SessionPool, ps: PooledSession, name: str) -> tuple[KeyVersions, list[Any]]:
    """The versions and minimum decryption version of ``name`` as the token holds them, and
    the policy objects found (for :func:`write_policy` to replace).

    Raises:
        HsmConfigError: a policy object does not parse.
    """
    versions = []
    prefix = f"portal-kek:{name}:v"
    for obj in ps.session.get_objects(
        {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.ID: _KEK_ID_PREFIX + name.encode()}
    ):
        label = obj[Attribute.LABEL]
        if isinstance(label, str) and label.startswith(prefix) and label[len(prefix) :].isdigit():
            versions.append(int(label[len(prefix) :]))
    policies = list(
        ps.session.get_objects(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.APPLICATION: APPLICATION,
                Attribute.LABEL: policy_label(name),
            }
        )
    )
    best = (-1, 1)
    for obj in policies:
        try:
            doc = json.loads(bytes(obj[Attribute.VALUE]))
            entry = (int(doc["seq"]), int(doc["min_decryption_version"]))
        except (ValueError, KeyError, TypeError):
            raise HsmConfigError(f"unreadable policy object for key {name!r}") from None
        best = max(best, entry)
    if not versions and not policies:
        pool.check_login(ps)
    return KeyVersions(tuple(sorted(set(versions))), best[1], time.monotonic()), policies


def write_policy(ps: PooledSession, name: str, min_version: int, existing: list[Any]) -> None:
    """Records the minimum decryption version. CKA_VALUE of a data object cannot change, so a
    new object with a higher sequence number replaces the old ones; readers take the highest,
    so a crash between the two steps leaves the new value in force."""
    seq = 0
    for obj in existing:
        try:
            seq = max(seq, int(json.loads(bytes(obj[Attribute.VALUE]))["seq"]))
        except (ValueError, KeyError, TypeError):
            continue
    value = json.dumps({"seq": seq + 1, "min_decryption_version": min_version}).encode()
    ps.session.create_object(
        {
            Attribute.CLASS: ObjectClass.DATA,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.MODIFIABLE: False,
            Attribute.APPLICATION: APPLICATION,
            Attribute.LABEL: policy_label(name),
            Attribute.VALUE: value,
        }
    )
    for obj in existing:
        obj.destroy()


def generate_kek(
    ps: PooledSession, name: str, version: int, capabilities: MechanismFlag, token_label: str
) -> None:
    """Generates KEK ``name`` version ``version`` inside the token (:data:`KEK_TEMPLATE`)."""
    ps.session.generate_key(
        KeyType.AES,
        256,
        id=_KEK_ID_PREFIX + name.encode(),
        label=kek_label(name, version),
        store=True,
        capabilities=capabilities,
        template=dict(KEK_TEMPLATE),
    )
    log.info("created key %r version %d in token %r", name, version, token_label)


def destroy_kek(pool: SessionPool, ps: PooledSession, name: str, version: int) -> None:
    """Destroys KEK ``name`` version ``version`` and forgets its handle in ``ps``."""
    find_kek(pool, ps, name, version).destroy()
    ps.keys.pop((name, version), None)


def key_names(ps: PooledSession) -> list[str]:
    """The names that have a policy object, sorted: every key the KMS created (and any whose
    creation was interrupted after its policy was written)."""
    found = set()
    for obj in ps.session.get_objects(
        {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: APPLICATION}
    ):
        label = obj[Attribute.LABEL]
        if isinstance(label, str) and label.startswith(_POLICY_PREFIX):
            found.add(label.removeprefix(_POLICY_PREFIX))
    return sorted(found)
