"""The ``portal-core hsm`` and ``portal-core keys`` commands.

:func:`add_commands` declares them on the ``portal-core`` parser; :func:`run` runs one. This
module imports python-pkcs11 only when a command needs the HSM, so the parser can be built,
and ``portal-core hsm init`` run, without the ``hsm`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from portal_core.exceptions import PortalError
from portal_core.kms import HSM_EXTRA_HINT, blob, softhsm
from portal_core.kms.errors import KeyNotFound, MalformedBlob

if TYPE_CHECKING:
    from portal_core.kms.pkcs11 import Pkcs11Kms

__all__ = ["add_commands", "add_hsm_options", "run"]


def add_hsm_options(p: argparse.ArgumentParser) -> None:
    """``--hsm-dir`` and ``--profile``, on every command that opens the HSM."""
    p.add_argument(
        "--hsm-dir",
        metavar="DIR",
        help="read PKCS11_* settings from DIR/env (default: ./.hsm when PKCS11_MODULE is unset)",
    )
    p.add_argument("--profile", help="vendor profile (default: PORTAL_KMS_PROFILE or softhsm)")


_NAME_HELP = "the key's name: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds ``hsm`` and ``keys`` (with their actions) to the ``portal-core`` subcommands."""
    p_hsm = sub.add_parser("hsm", help="set up or check the HSM token")
    hsm_sub = p_hsm.add_subparsers(dest="action", required=True)
    p_init = hsm_sub.add_parser("init", help="create a SoftHSM2 token (kept if it exists)")
    p_init.add_argument("dir", nargs="?", default=".hsm", help="token directory (default .hsm)")
    p_check = hsm_sub.add_parser("check", help="log in and check the profile on a scratch key")
    add_hsm_options(p_check)

    p_keys = sub.add_parser("keys", help="manage key-encryption keys in the HSM")
    keys_sub = p_keys.add_subparsers(dest="action", required=True)
    for action, text in (("create", "create version 1 of a key"), ("rotate", "add a version")):
        p = keys_sub.add_parser(action, help=text)
        p.add_argument("name", help=_NAME_HELP)
        add_hsm_options(p)
    p_list = keys_sub.add_parser("list", help="list keys, versions and retirements")
    p_list.add_argument("name", nargs="?", help="list only this key (default: every key)")
    p_list.add_argument("--json", action="store_true", help="print JSON")
    add_hsm_options(p_list)
    p_retire = keys_sub.add_parser(
        "retire", help="stop VERSION and every older version of a key from decrypting"
    )
    p_retire.add_argument("name", help=_NAME_HELP)
    p_retire.add_argument(
        "version",
        type=int,
        help="the newest version to retire: from 1 to the key's newest version minus 1 (new "
        "seals use the newest, so it cannot be retired: rotate first)",
    )
    p_retire.add_argument(
        "--destroy",
        action="store_true",
        help="also destroy those versions in the HSM (irreversible: their blobs are lost)",
    )
    p_retire.add_argument("--yes", action="store_true", help="confirm --destroy")
    add_hsm_options(p_retire)
    p_rewrap = keys_sub.add_parser(
        "rewrap", help="move stored blobs (files, or directories of files) to the newest versions"
    )
    p_rewrap.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a file holding one blob, or a directory whose files (searched recursively) each "
        "hold one",
    )
    p_rewrap.add_argument("--batch", type=int, default=2048, help="blobs per batch (default 2048)")
    bar = p_rewrap.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true", default=None, help="always draw the bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never draw it")
    add_hsm_options(p_rewrap)


def run(args: argparse.Namespace) -> int:
    """Runs one ``hsm`` or ``keys`` command; returns the exit status."""
    try:
        if args.command == "hsm" and args.action == "init":
            return _hsm_init(args.dir)
        with _open_kms(args) as kms:
            if args.command == "hsm":
                return _hsm_check(kms)
            return _KEYS[args.action](kms, args)
    except ImportError as e:  # python-pkcs11 or cffi: the optional extra "hsm"
        print(f"portal-core {args.command} {args.action}: {e}", file=sys.stderr)
        return 2
    except (PortalError, ValueError, OSError) as e:
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
    try:
        from portal_core.kms.pkcs11 import Pkcs11Kms
    except ModuleNotFoundError as e:
        raise ImportError(f"{e}; {HSM_EXTRA_HINT}") from None
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


def _retire_bounds(kms: Pkcs11Kms, name: str, version: int) -> None:
    """Raises ValueError unless ``version`` can be retired: it must exist, must not be the
    newest (new seals use it), and the versions up to it must not all be destroyed."""
    if version < 1:
        raise ValueError(
            f"VERSION must be 1 or more, not {version}: retiring version N stops versions 1 "
            "to N from decrypting, and versions start at 1"
        )
    info = kms.describe(name)
    lowest, highest = max(1, info.versions[0] - 1), info.newest - 1
    if highest < 1:
        raise ValueError(
            f"key {name!r} has only version {info.newest}, which new seals use: add a version "
            f"first (portal-core keys rotate {name}), then retire version {info.newest}"
        )
    if version > info.newest:
        why = f"key {name!r} has no version {version} (its newest is {info.newest})"
    elif version == info.newest:
        why = (
            f"version {version} is the newest version of key {name!r}, which new seals use, so "
            "it cannot be retired (rotate first)"
        )
    elif version < lowest:
        why = f"versions 1 to {lowest} of key {name!r} are destroyed already"
    elif version < info.min_decryption_version - 1:
        # Retiring only ever moves the bar up: a lower VERSION would bring retired versions
        # back into use, which is not what "retire" says.
        why = (
            f"versions 1 to {info.min_decryption_version - 1} of key {name!r} are retired "
            "already, and retiring cannot bring any of them back"
        )
        lowest = info.min_decryption_version - 1
    else:
        return
    raise ValueError(f"{why}; VERSION must be between {lowest} and {highest}")


def _keys_retire(kms: Pkcs11Kms, args: argparse.Namespace) -> int:
    if args.destroy and not args.yes:
        print(
            "portal-core keys retire: --destroy deletes key versions for good and every blob "
            "still sealed under them becomes unreadable; add --yes to confirm",
            file=sys.stderr,
        )
        return 2
    _retire_bounds(kms, args.name, args.version)
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
    """Writes ``data`` next to ``path``, in a temporary file with the same mode, and flushes it
    to the disk (``fsync``)."""
    tmp = path.with_name(f".{path.name}.rewrap-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, path.stat().st_mode & 0o7777)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_all(pairs: list[tuple[Path, bytes]]) -> None:
    """Replaces each file with its new blob atomically: a file holds its old blob or its new
    one, never a mix, even after a crash. Each new file reaches the disk (``fsync``) before
    any rename, and each directory holding a renamed file is synced after the renames. Only
    these files and directories are synced, never the whole machine."""
    temps: list[Path] = []
    try:
        for path, data in pairs:
            temps.append(_write_temp(path, data))
        for (path, _), tmp in zip(pairs, temps, strict=True):
            os.replace(tmp, path)
        for directory in sorted({path.parent for path, _ in pairs}):
            _fsync_directory(directory)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def _version(data: bytes) -> tuple[str, int]:
    header = blob.Header.parse(data[: blob.header_len(data)])
    return header.key_name, header.key_version


class _Newest:
    """The newest version of each key named by the blobs of one run, asked once per key."""

    def __init__(self, kms: Pkcs11Kms) -> None:
        self.kms = kms
        self.known: dict[str, int | None] = {}

    def up_to_date(self, data: bytes) -> bool:
        """Whether ``data`` is a blob already under the newest version of its key. A blob
        that does not parse, or names a key the token does not hold, is not: rewrapping it
        reports why."""
        try:
            name, version = _version(data)
        except MalformedBlob:
            return False
        if name not in self.known:
            try:
                self.known[name] = self.kms.describe(name).newest
            except KeyNotFound:
                self.known[name] = None
        newest = self.known[name]
        return newest is not None and version >= newest


def _keys_rewrap(kms: Pkcs11Kms, args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise ValueError("--batch must be at least 1")
    files = list(_files(args.paths))
    enabled = sys.stderr.isatty() if args.progress is None else args.progress
    progress = _Progress(len(files), enabled)
    newest = _Newest(kms)
    moves: Counter[tuple[str, int, int]] = Counter()
    current = 0
    failures: list[tuple[Path, str]] = []
    for start in range(0, len(files), args.batch):
        batch: list[Path] = []
        datas: list[bytes] = []
        for path in files[start : start + args.batch]:
            data = path.read_bytes()
            if newest.up_to_date(data):
                current += 1  # left exactly as it is: not rewritten
                continue
            batch.append(path)
            datas.append(data)
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
        progress.update(min(args.batch, len(files) - start))
    progress.finish()
    moved = sum(moves.values())
    print(f"rewrapped {moved} of {len(files)} blobs to the newest key versions")
    if current:
        print(f"  already at the newest version, left as they were: {current}")
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
