"""The ``portal-core`` command line: the demo, the HSM token, key-encryption keys, and
tenants."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from portal_core import DISTRIBUTION, __version__, aead, cpu_features, envelope, kdf
from portal_core.exceptions import PortalError
from portal_core.kms import HSM_EXTRA_HINT
from portal_core.kms.commands import add_commands, add_hsm_options
from portal_core.store import STORE_FILE

# OWASP's minimum for Argon2id (m = 19 MiB, t = 2, p = 1).
DEMO_ARGON2 = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}


def _time(fn: Callable[[], object], *, min_seconds: float = 0.2) -> float:
    """Median seconds per call of ``fn`` over at least ``min_seconds`` of repeats."""
    samples: list[float] = []
    deadline = time.perf_counter() + min_seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples[len(samples) // 2]


def _fmt_seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:9.2f} us"
    if s < 1:
        return f"{s * 1e3:9.2f} ms"
    return f"{s:9.2f} s "


def _core_demo() -> dict[str, Any]:
    """Seal and open a sample share, derive a password key, the CPU and timings."""
    key = os.urandom(envelope.KEY_LEN)
    share = os.urandom(32)  # stands in for a secp256k1 backup share scalar
    context = {"wallet": "demo-wallet", "curve": "SECP256K1", "party": "client"}
    sealed = envelope.seal(key, share, context=context, key_id="demo-key")
    assert envelope.open(key, sealed, context=context) == share
    salt = os.urandom(16)
    password_key = kdf.argon2id(b"correct horse battery staple", salt, **DEMO_ARGON2)

    gcm = aead.AESGCM(aead.AESGCM.generate_key(256))
    nonce, kib = os.urandom(12), os.urandom(1024)
    shares = [os.urandom(1024) for _ in range(10_000)]
    timings = {
        "AESGCM.encrypt 1 KiB": _time(lambda: gcm.encrypt(nonce, kib, None)),
        "envelope.seal 32 B share": _time(lambda: envelope.seal(key, share, context=context)),
        "envelope.seal_many 10,000 x 1 KiB": _time(
            lambda: envelope.seal_many(key, shares, context=context)
        ),
        "hkdf_sha256 32 B": _time(lambda: kdf.hkdf_sha256(key, info=b"demo")),
        "argon2id t=2 m=19 MiB p=1": _time(
            lambda: kdf.argon2id(b"pw", salt, **DEMO_ARGON2), min_seconds=0.5
        ),
    }
    return {
        "cpu_features": cpu_features(),
        "envelope": {
            "inspect": envelope.inspect(sealed),
            "sealed_bytes": len(sealed),
            "opened": True,
        },
        "password_key_bytes": len(password_key),
        "timings_seconds": timings,
    }


def _print_core(result: dict[str, Any]) -> None:
    print("CPU features")
    for name, value in result["cpu_features"].items():
        print(f"  {name:10} {value}")
    print("\nSealed a 32-byte share under a 256-bit key:")
    env = result["envelope"]
    info = env["inspect"]
    print(f"  {env['sealed_bytes']} bytes, version {info['version']}, suite {info['suite']}")
    print(f"  key id {info['key_id']!r}, context {info['context']}")
    print("  opened with the same key and context: ok")
    print(
        f"\nDerived a {result['password_key_bytes']}-byte password key with Argon2id "
        "(OWASP parameters)"
    )
    print("\nTimings (median per call)")
    for name, seconds in result["timings_seconds"].items():
        print(f"  {name:36} {_fmt_seconds(seconds)}")


def _demo_kms(hsm_dir: str | None, profile: str | None) -> Any:
    """The KMS of the wallet demo: the token named by the environment, ``--hsm-dir``, or
    ``./.hsm`` (what ``portal-core hsm init`` makes)."""
    from portal_core.kms import Pkcs11Kms, softhsm

    if hsm_dir:
        os.environ.update(softhsm.read_env_file(os.path.join(hsm_dir, "env")))
    elif "PKCS11_MODULE" not in os.environ and os.path.isfile(".hsm/env"):
        # SoftHSM2 reads SOFTHSM2_CONF from the process environment, so all of it goes there.
        os.environ.update(softhsm.read_env_file(".hsm/env"))
    return Pkcs11Kms.from_env(profile=profile) if profile else Pkcs11Kms.from_env()


def demo(
    as_json: bool, *, core: bool = False, hsm_dir: str | None = None, profile: str | None = None
) -> int:
    """The crypto core at work, then (unless ``core``) a wallet's whole life on the HSM:
    create, back up with PASSWORD and CUSTOM, lose the device, recover with each, eject."""
    kms = None
    if not core:
        try:
            kms = _demo_kms(hsm_dir, profile)
        except (ImportError, PortalError) as e:
            print(
                f"portal-core demo: the wallet demo needs an HSM token ({e}): run "
                "`portal-core hsm init`, then `portal-core demo` in the same directory. "
                "`portal-core demo --core` shows the crypto core alone.",
                file=sys.stderr,
            )
            return 1
    result = _core_demo()
    if kms is not None:
        from portal_core.backup import demo as wallet_demo

        try:
            with kms:
                result["wallet"] = wallet_demo.run(kms)
        except PortalError as e:
            print(f"portal-core demo: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    _print_core(result)
    if "wallet" in result:
        print()
        for line in wallet_demo.format_text(result["wallet"]):
            print(line)
    return 0


def http_demo(*, as_json: bool) -> int:
    """``portal-core demo --http`` (:mod:`portal_core.server.demo`)."""
    try:
        from portal_core.server import demo as service_demo
    except ImportError as e:
        print(
            f"portal-core demo --http: {e}; pip install '{DISTRIBUTION}[server]'", file=sys.stderr
        )
        return 2
    try:
        summary = service_demo.run(out=(lambda _line: None) if as_json else print)
    except (PortalError, RuntimeError, subprocess.SubprocessError) as e:
        print(f"portal-core demo --http: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if as_json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portal-core", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"portal-core {__version__} ({DISTRIBUTION})"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser(
        "demo", help="show the crypto core, then a wallet's backup, recovery and eject on the HSM"
    )
    p_demo.add_argument("--json", action="store_true", help="print one JSON object")
    p_demo.add_argument("--core", action="store_true", help="the crypto core only (no HSM)")
    p_demo.add_argument(
        "--http",
        action="store_true",
        help="a wallet's life over HTTP: the service and the integrator's receiver as real "
        "servers on 127.0.0.1 (embedded defaults in a temporary directory), the SDK against "
        "them",
    )
    add_hsm_options(p_demo)

    add_commands(sub)
    _add_tenant_commands(sub)
    _add_serve_command(sub)

    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # The reader went away (`portal-core demo --json | head`): no traceback, and no
        # second error when Python flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _add_tenant_commands(sub: Any) -> None:
    p_tenants = sub.add_parser("tenants", help="manage tenants (custodian customers)")
    tenants_sub = p_tenants.add_subparsers(dest="tenants_command", required=True)
    p_create = tenants_sub.add_parser(
        "create", help="create a tenant and print its first admin API key (shown once)"
    )
    p_create.add_argument("name", help="the tenant's name (unique, compared without case)")
    where = p_create.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--data-dir",
        help=f"the custodian's data directory (the store is {STORE_FILE} in it; both are "
        "created, private, if missing)",
    )
    where.add_argument(
        "--store",
        metavar="URL",
        help="the custodian's PostgreSQL database, as `portal-core serve --store` names it "
        "(prefer PGPASSWORD or ~/.pgpass to a password in the URL)",
    )
    p_create.add_argument("--json", action="store_true", help="print one JSON object")


def tenants_create(
    name: str, data_dir: str | None, *, as_json: bool, store_url: str | None = None
) -> int:
    """Creates tenant ``name`` in the store under ``data_dir``, or in the PostgreSQL
    database ``store_url``; prints its id and first admin key. Exit 1 (and a message on
    stderr, never the URL) when the name is taken or invalid or the store unusable."""
    from portal_core.tenants import Tenants

    try:
        with _open_store(data_dir, store_url) as store:
            created = Tenants(store).create_tenant(name)
    except (PortalError, ValueError, OSError, ImportError) as e:
        print(f"portal-core tenants create: {e}", file=sys.stderr)
        return 1
    key = created.admin_key
    if as_json:
        json.dump({"tenant_id": created.tenant_id, "admin_api_key": key.api_key}, sys.stdout)
        print()
        return 0
    print(f"tenant {created.name!r} created: {created.tenant_id}")
    print(f"admin API key (id {key.key_id}), shown this once; keep it secret:")
    print(key.api_key)
    return 0


def _open_store(data_dir: str | None, store_url: str | None) -> Any:
    """The store ``tenants create`` writes to (a context manager that closes it)."""
    if store_url is not None:
        from portal_core.server.config import store_problem

        why = store_problem(store_url)
        if why is not None:
            raise ValueError(f"--store {why}")
        from portal_core.store.postgres import PostgresStore

        return PostgresStore(store_url, pool_size=1, timeout=10.0)
    from portal_core.store import SqliteStore

    assert data_dir is not None  # argparse requires one of the two
    # The directory holds the store: owner only when made here.
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    return SqliteStore(os.path.join(data_dir, STORE_FILE), timeout=10.0)


# ``portal-core serve``'s options: each sets the setting of its name, as its variable does.
_SERVE_OPTIONS = (
    ("--host", "ADDRESS", "PORTAL_HOST", "the address to listen on (default 127.0.0.1)"),
    ("--port", "PORT", "PORTAL_PORT", "the TCP port (default 8400)"),
    (
        "--data-dir",
        "DIR",
        "PORTAL_DATA_DIR",
        f"the custodian's data directory: its store ({STORE_FILE}) and, unless PKCS11_* "
        "names an HSM, its SoftHSM2 token (hsm/), made private on first start",
    ),
    ("--workers", "N", "PORTAL_WORKERS", "worker processes (default 1)"),
    ("--tls-cert", "FILE", "PORTAL_TLS_CERT", "serve HTTPS with this PEM certificate chain"),
    ("--tls-key", "FILE", "PORTAL_TLS_KEY", "the PEM private key of --tls-cert"),
    ("--operator", "NAME", "PORTAL_OPERATOR", "who runs this custodian (default custodian)"),
    (
        "--store",
        "URL",
        "PORTAL_STORE",
        "keep the store in this PostgreSQL database (postgresql://USER@HOST/DB; the password "
        "best in PGPASSWORD or ~/.pgpass) instead of SQLite in the data directory",
    ),
    ("--config", "FILE", "PORTAL_CONFIG", "a TOML file of settings"),
)


def _add_serve_command(sub: Any) -> None:
    p_serve = sub.add_parser(
        "serve",
        help="run the custodian's HTTP service (settings: options, then PORTAL_* variables, "
        "then the config file; see docs/server.md)",
    )
    for flag, metavar, variable, text in _SERVE_OPTIONS:
        p_serve.add_argument(flag, metavar=metavar, help=f"{text}; or {variable}")


def serve(args: argparse.Namespace) -> int:
    """Checks the settings, prepares the data directory and the HSM, then serves until
    SIGTERM or SIGINT. Exit 1 (and a message on stderr) when a setting is refused or the
    store or the HSM cannot be opened; 2 when the ``server`` extra is missing."""
    try:
        from portal_core.server import config, runtime
    except ImportError as e:
        print(
            f"portal-core serve: {e}; install the server extra: pip install "
            f"'{DISTRIBUTION}[server]'",
            file=sys.stderr,
        )
        return 2
    options = {name: getattr(args, name) for name in (*config.OPTIONS, "config")}
    try:
        runtime.serve(config.load_settings(options))
    except ImportError as e:  # python-pkcs11 (the hsm extra), or webauthn for passkeys
        print(f"portal-core serve: {e}", file=sys.stderr)
        return 2
    except (PortalError, ValueError, OSError) as e:
        print(f"portal-core serve: {e}", file=sys.stderr)
        return 1
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo" and args.http:
        return http_demo(as_json=args.json)
    if args.command == "demo":
        return demo(args.json, core=args.core, hsm_dir=args.hsm_dir, profile=args.profile)
    if args.command == "tenants":
        return tenants_create(args.name, args.data_dir, as_json=args.json, store_url=args.store)
    if args.command == "serve":
        return serve(args)
    try:
        from portal_core.kms import commands as kms_cli
    except ImportError as e:  # python-pkcs11 is the optional extra "hsm"
        print(f"portal-core {args.command}: {e}; {HSM_EXTRA_HINT}", file=sys.stderr)
        return 2
    return kms_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
