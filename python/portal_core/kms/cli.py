"""The ``portal-core hsm`` and ``portal-core keys`` commands (parsed in ``portal_core.cli``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from portal_core.exceptions import PortalError
from portal_core.kms import blob, softhsm
from portal_core.kms.pkcs11 import Pkcs11Kms

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Runs one ``hsm`` or ``keys`` command; returns the exit status."""
    try:
        if args.command == "hsm" and args.action == "init":
            return _hsm_init(args.dir)
        with _open_kms(args) as kms:
            if args.command == "hsm":
                return _hsm_check(kms)
            return _KEYS[args.action](kms, args)
    except (PortalError, ValueError) as e:
        print(f"portal-core {args.command} {args.action}: {e}", file=sys.stderr)
        return 1


def _open_kms(args: argparse.Namespace) -> Pkcs11Kms:
    # The env file's variables go into this process's environment, all of them (SoftHSM2
    # reads SOFTHSM2_CONF from there when the module initialises).
    if args.hsm_dir:
        os.environ.update(softhsm.read_env_file(Path(args.hsm_dir) / "env"))
    elif "PKCS11_MODULE" not in os.environ and Path(".hsm/env").is_file():
        os.environ.update(softhsm.read_env_file(".hsm/env"))
    options = {"profile": args.profile} if args.profile else {}
    return Pkcs11Kms.from_env(**options)


def _hsm_init(directory: str) -> int:
    env_file, created = softhsm.init_token_dir(directory)
    state = "initialised" if created else "already initialised"
    print(f"token {softhsm.TOKEN_LABEL!r} {state} in {env_file.parent}")
    print(f"load its settings with: . {env_file}")
    return 0


def _hsm_check(kms: Pkcs11Kms) -> int:
    report = kms.self_test()
    for key, value in report.items():
        print(f"  {key:28} {value}")
    print("HSM check passed: login, non-extractable keys, wrap, unwrap, tamper refusal")
    return 0


def _keys_create(kms: Pkcs11Kms, args: argparse.Namespace) -> int:
    kms.create_key(args.name)
    print(f"created key {args.name!r} version 1")
    return 0


def _keys_rotate(kms: Pkcs11Kms, args: argparse.Namespace) -> int:
    version = kms.rotate(args.name)
    print(f"key {args.name!r} rotated: new seals use version {version}")
    return 0


def _keys_list(kms: Pkcs11Kms, args: argparse.Namespace) -> int:
    infos = [kms.describe(args.name)] if args.name else kms.list_keys()
    if args.json:
        rows = [
            {
                "name": i.name,
                "versions": list(i.versions),
                "newest": i.newest,
                "min_decryption_version": i.min_decryption_version,
            }
            for i in infos
        ]
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not infos:
        print("no keys (create one with: portal-core keys create NAME)")
        return 0
    print(f"{'KEY':24} {'NEWEST':>6} {'MIN DECRYPT':>11}  VERSIONS HELD")
    for i in infos:
        held = ",".join(str(v) for v in i.versions)
        print(f"{i.name:24} {i.newest:>6} {i.min_decryption_version:>11}  {held}")
    return 0


def _keys_retire(kms: Pkcs11Kms, args: argparse.Namespace) -> int:
    if args.destroy and not args.yes:
        print(
            "portal-core keys retire: --destroy deletes key versions for good and every blob "
            "still sealed under them becomes unreadable; add --yes to confirm",
            file=sys.stderr,
        )
        return 2
    kms.set_min_decryption_version(args.name, args.version + 1)
    print(f"key {args.name!r}: versions {args.version} and older no longer decrypt")
    if args.destroy:
        for version in kms.versions(args.name):
            if version <= args.version:
                kms.destroy_version(args.name, version)
                print(f"key {args.name!r}: version {version} destroyed")
    return 0


class _Progress:
    """A one-line progress bar on stderr."""

    WIDTH = 30

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.done = 0
        self.start = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        filled = self.WIDTH * self.done // max(self.total, 1)
        rate = self.done / max(time.monotonic() - self.start, 1e-9)
        sys.stderr.write(
            f"\rrewrap [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{self.done}/{self.total} blobs  {rate:,.0f}/s"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _files(paths: list[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    if not name.endswith(".rewrap-tmp"):
                        yield Path(root, name)
        elif path.is_file():
            yield path
        else:
            raise ValueError(f"{raw}: no such file or directory")


def _write_temp(path: Path, data: bytes) -> Path:
    """Writes ``data`` next to ``path``, in a temporary file with the same mode."""
    tmp = path.with_name(f".{path.name}.rewrap-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, path.stat().st_mode & 0o7777)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return tmp


def _replace_all(pairs: list[tuple[Path, bytes]]) -> None:
    """Replaces each file with its new blob atomically: a file holds its old blob or its new
    one, never a mix, even after a crash. The new contents reach the disk (one ``sync`` for
    the batch, rather than one ``fsync`` per file) before any rename."""
    temps: list[Path] = []
    try:
        for path, data in pairs:
            temps.append(_write_temp(path, data))
        os.sync()
        for (path, _), tmp in zip(pairs, temps, strict=True):
            os.replace(tmp, path)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def _version(data: bytes) -> tuple[str, int]:
    header = blob.Header.parse(data[: blob.header_len(data)])
    return header.key_name, header.key_version


def _keys_rewrap(kms: Pkcs11Kms, args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise ValueError("--batch must be at least 1")
    files = list(_files(args.paths))
    enabled = sys.stderr.isatty() if args.progress is None else args.progress
    progress = _Progress(len(files), enabled)
    moves: Counter[tuple[str, int, int]] = Counter()
    failures: list[tuple[Path, str]] = []
    for start in range(0, len(files), args.batch):
        batch = files[start : start + args.batch]
        datas = [path.read_bytes() for path in batch]
        try:
            results: list[bytes | PortalError] = list(kms.rewrap_many(datas))
        except PortalError:
            # Find the bad blobs one by one; the good ones in this batch still move.
            results = []
            for data in datas:
                try:
                    results.append(kms.rewrap(data))
                except PortalError as e:
                    results.append(e)
        done: list[tuple[Path, bytes]] = []
        for path, old, new in zip(batch, datas, results, strict=True):
            if isinstance(new, PortalError):
                failures.append((path, f"{type(new).__name__}: {new}"))
                continue
            done.append((path, new))
            (name, before), (_, after) = _version(old), _version(new)
            moves[(name, before, after)] += 1
        _replace_all(done)
        progress.update(len(batch))
    progress.finish()
    moved = sum(moves.values())
    print(f"rewrapped {moved} of {len(files)} blobs to the newest key versions")
    for (name, before, after), count in sorted(moves.items()):
        print(f"  {name}: v{before} -> v{after}: {count}")
    for path, why in failures:
        print(f"  failed {path}: {why}", file=sys.stderr)
    return 1 if failures else 0


_KEYS = {
    "create": _keys_create,
    "rotate": _keys_rotate,
    "list": _keys_list,
    "retire": _keys_retire,
    "rewrap": _keys_rewrap,
}
