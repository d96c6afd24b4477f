"""``fieldpick bundle --board NAME``: one file to copy to a station.

Writes, into ``--out`` (default ``dist/``):

- ``fieldpick-NAME.pyz``: a Python zip application (stdlib ``zipapp``) holding
  ``fieldpick/__init__.py``, ``fieldpick/edge/**`` (code, the model and its
  card), ``fieldpick/lab/**`` (the demo's synthetic data and scoring; no
  tests, no train/export), the station side of ``fieldpick/boards``
  (selftest, bench, estimator, this board's profile) and a manifest with the
  sha256 of every file;
- ``fieldpick-NAME.station.json``: an example station config;
- ``fieldpick-NAME.service``: a systemd unit that runs the station from it.

numpy is compiled code and cannot travel inside a zip: the bundle uses the
board's own numpy (``sudo apt install python3-numpy``) and says so when it is
missing.  On first run the bundle unpacks itself into a cache folder
(``$FIELDPICK_BUNDLE_CACHE``, else ``~/.cache/fieldpick/bundles``) keyed by
its sha256, so the model and code are ordinary files there.

The archive is reproducible: files are sorted and stamped 1980-01-01, so the
same sources give the same bytes.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipapp
import zipfile

from fieldpick.edge.card import ModelCard
from fieldpick.edge.errors import ConfigError

from .estimate import list_profiles, load_profile
from .selftest import MANIFEST

__all__ = ["BOARD_FILES", "collect", "build_bundle", "systemd_unit", "example_config", "main"]

log = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: station-side modules of fieldpick.boards that travel in a bundle
BOARD_FILES = ("__init__.py", "bench.py", "estimate.py", "selftest.py")
_EPOCH = (1980, 1, 1, 0, 0, 0)

# The bundle's entry point.  Python 3.8+ and the standard library only, until numpy is found.
MAIN_PY = '''\
"""fieldpick station bundle %(name)s (board %(board)s): python3 %(name)s.pyz selftest | VERB ..."""
import hashlib
import os
import shutil
import sys
import tempfile
import zipfile

if sys.version_info < (3, 8):
    sys.exit("fieldpick needs Python >= 3.8; this is %%s" %% sys.version.split()[0])
try:
    import numpy  # noqa: F401
except ImportError:
    sys.stderr.write(
        "fieldpick: this bundle needs numpy, which cannot travel inside it (compiled code).\\n"
        "  Raspberry Pi OS / Debian / Ubuntu: sudo apt install python3-numpy\\n"
        "  elsewhere: python3 -m pip install numpy\\n")
    sys.exit(3)


def _unpack(archive):
    with open(archive, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    base = os.environ.get("FIELDPICK_BUNDLE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "fieldpick", "bundles")
    target = os.path.join(base, "%(name)s-" + digest)
    if os.path.exists(os.path.join(target, ".complete")):
        return target
    try:
        os.makedirs(base, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".unpack-", dir=base)
    except OSError:
        base = os.path.join(tempfile.gettempdir(), "fieldpick-bundles")
        os.makedirs(base, exist_ok=True)
        target = os.path.join(base, "%(name)s-" + digest)
        if os.path.exists(os.path.join(target, ".complete")):
            return target
        tmp = tempfile.mkdtemp(prefix=".unpack-", dir=base)
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp)
    open(os.path.join(tmp, ".complete"), "w").close()
    try:
        os.rename(tmp, target)
    except OSError:  # another process unpacked it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


sys.path.insert(0, _unpack(os.path.abspath(sys.argv[0] if os.path.isfile(sys.argv[0]) else os.path.dirname(__file__))))
sys.dont_write_bytecode = True
# run this bundle's own copy of fieldpick, never another install of it (a development
# checkout's editable finder would otherwise supply modules the bundle does not hold)
def _foreign(finder):
    mod = getattr(finder if isinstance(finder, type) else type(finder), "__module__", "") or ""
    return "__editable__" in mod and "fieldpick" in mod


sys.meta_path[:] = [f for f in sys.meta_path if not _foreign(f)]
for _m in [m for m in sys.modules if m == "fieldpick" or m.startswith("fieldpick.")]:
    del sys.modules[_m]
from fieldpick.boards.selftest import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
'''


def _git_rev():
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "edge", "boards"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev + ("+dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def default_model(models_dir=None):
    """The one .tflite in edge/models/ (with its card), or None when there is none."""
    models_dir = models_dir or os.path.join(REPO, "edge", "models")
    found = sorted(n for n in os.listdir(models_dir) if n.endswith(".tflite")) if os.path.isdir(models_dir) else []
    if not found:
        return None
    if len(found) > 1:
        raise ConfigError("edge/models holds %d models (%s); choose one with --model" % (len(found), ", ".join(found)))
    return os.path.join(models_dir, found[0])


def collect(board, model=None, repo=REPO):
    """The bundle's files: {path in the archive: bytes}, sorted by path."""
    files = {}
    files["fieldpick/__init__.py"] = _read(os.path.join(repo, "__init__.py"))
    for package in ("edge", "lab"):  # the station runtime, and the demo's synthetic data and scoring
        for dirpath, dirnames, filenames in os.walk(os.path.join(repo, package)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and d != "models")
            for n in sorted(filenames):
                if n.endswith(".py"):
                    full = os.path.join(dirpath, n)
                    files["fieldpick/" + os.path.relpath(full, repo).replace(os.sep, "/")] = _read(full)
    if model:
        card_path = os.path.splitext(model)[0] + ".json"
        if not os.path.exists(card_path):
            raise ConfigError("model %s has no card %s beside it; export writes both" % (model, card_path))
        card = ModelCard.load(card_path, verify=True)
        files["fieldpick/edge/models/" + card.model_file] = _read(card.model_path(card_path))
        files["fieldpick/edge/models/" + os.path.basename(card_path)] = _read(card_path)
    for n in BOARD_FILES:
        files["fieldpick/boards/" + n] = _read(os.path.join(repo, "boards", n))
    profile = os.path.join(repo, "boards", "profiles", board + ".json")
    files["fieldpick/boards/profiles/%s.json" % board] = _read(profile)
    return dict(sorted(files.items()))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def systemd_unit(board, pyz_name):
    """A systemd unit that runs the station from the bundle under /opt/fieldpick."""
    return """\
# fieldpick station (board %(board)s).  Install:
#   sudo useradd --system --home /var/lib/fieldpick --groups dialout fieldpick
#   sudo install -D -m 0644 %(pyz)s /opt/fieldpick/%(pyz)s
#   sudo install -D -m 0644 fieldpick-%(board)s.station.json /etc/fieldpick/station.json
#   sudo cp fieldpick-%(board)s.service /etc/systemd/system/ && sudo systemctl enable --now fieldpick-%(board)s
[Unit]
Description=fieldpick on-station seismic phase picker (%(board)s)
Wants=network-online.target time-sync.target
After=network-online.target time-sync.target

[Service]
Type=simple
User=fieldpick
Group=fieldpick
SupplementaryGroups=dialout
StateDirectory=fieldpick
WorkingDirectory=/var/lib/fieldpick
Environment=FIELDPICK_BUNDLE_CACHE=/var/lib/fieldpick/bundles
Environment=OPENBLAS_NUM_THREADS=1
Environment=PYTHONUNBUFFERED=1
ExecStartPre=/usr/bin/python3 /opt/fieldpick/%(pyz)s selftest
ExecStart=/usr/bin/python3 /opt/fieldpick/%(pyz)s run --config /etc/fieldpick/station.json
Restart=always
RestartSec=10
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
ReadWritePaths=/var/lib/fieldpick

[Install]
WantedBy=multi-user.target
""" % {"board": board, "pyz": pyz_name}


def example_config(board, card=None):
    """An example station config for the board, checked by the station's own config loader.

    The model is the bundled one ('default'); the source, the output and the
    telemetry block are placeholders to edit (docs/station.md describes them).
    """
    try:
        from fieldpick.edge.config import StationConfig
    except ImportError:
        StationConfig = None
    example = {
        "model": "default",
        "backend": "numpy",
        "mode": "gated",
        "sources": ["seedlink://127.0.0.1:18000?streams=XX_STA:HH?"],
        "output": {"path": "/var/lib/fieldpick/picks.csv", "format": "csv"},
        "telemetry": {"table": "/etc/fieldpick/stations.json", "station": "XX.STA..HHZ",
                      "journal": "/var/lib/fieldpick/journal", "link": "udp://192.0.2.10:18000",
                      "profile": "iridium", "max_delay_s": 60},
    }
    if StationConfig is None:
        example["_note"] = "sketch: fieldpick.edge.config is not in this build; check 'fieldpick run --help'"
        return example
    return StationConfig.from_dict(example).to_dict()


def _zip_bytes(files):
    """A deterministic zip of ``files`` (sorted, 1980-01-01 stamps, deflated)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return buf.getvalue()


def _write_pyz(files, manifest, pyz):
    files = dict(files)
    files["fieldpick/boards/" + MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    raw = pyz + ".zip.tmp"
    with open(raw, "wb") as f:
        f.write(_zip_bytes(files))
    tmp = pyz + ".tmp"
    zipapp.create_archive(raw, tmp, interpreter="/usr/bin/env python3")
    os.remove(raw)
    os.replace(tmp, pyz)


def _record(pyz):
    """The model's outputs and the demo stream's picks from inside the new bundle (the board must match them)."""
    with tempfile.TemporaryDirectory(prefix="fieldpick-bundle-") as cache:
        env = dict(os.environ, FIELDPICK_BUNDLE_CACHE=cache, OPENBLAS_NUM_THREADS="1")
        env.pop("PYTHONPATH", None)
        res = subprocess.run([sys.executable, os.path.abspath(pyz), "selftest", "--record"], capture_output=True,
                             text=True, env=env, cwd=cache, timeout=600)
    if res.returncode != 0:
        raise ConfigError("the model or the demo stream failed inside the new bundle %s (exit %d): %s"
                          % (pyz, res.returncode, (res.stderr.strip().splitlines() or ["no output"])[-1]))
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    # timings differ from run to run: keep them out, so that the same sources give the same bundle
    if rec.get("demo"):
        rec["demo"].pop("seconds", None)
    for r in (rec.get("interpreter") or {}).values():
        r.pop("ms", None)
    return rec


def build_bundle(board, out_dir, model=None, built=None):
    """Build ``fieldpick-BOARD.pyz`` and its config and unit in ``out_dir``; returns the .pyz path."""
    load_profile(board)  # checks the board name and its profile
    name = "fieldpick-%s" % board
    files = collect(board, model)
    card = None
    if model:
        card = ModelCard.load(os.path.splitext(model)[0] + ".json", verify=False)
    manifest = {
        "format": "fieldpick-bundle",
        "version": 1,
        "name": name,
        "board": board,
        "model": card.name if card else None,
        "built": built or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "source": _git_rev(),
        "requires": "Python >= 3.8 and numpy from the board's OS (python3-numpy)",
        "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
    }
    files["__main__.py"] = (MAIN_PY % {"name": name, "board": board}).encode()
    os.makedirs(out_dir, exist_ok=True)
    pyz = os.path.join(out_dir, name + ".pyz")
    # build once, run the model and the demo stream inside that bundle, build again with what they gave
    manifest["interpreter"], manifest["demo"] = None, None
    _write_pyz(files, manifest, pyz)
    manifest.update(_record(pyz))
    _write_pyz(files, manifest, pyz)
    demo = manifest["demo"]
    if demo is not None and "error" in demo:
        log.warning("%s: the demo stream crashed with this model (%s); the board's selftest will fail", pyz, demo["error"])
    elif demo is not None and not demo["picks"]:
        log.warning("%s: the model made no picks on the demo stream; the board's selftest will fail", pyz)
    with open(os.path.join(out_dir, name + ".station.json"), "w", encoding="utf-8") as f:
        json.dump(example_config(board, card), f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, name + ".service"), "w", encoding="utf-8") as f:
        f.write(systemd_unit(board, name + ".pyz"))
    log.info("wrote %s (%d files, %d bytes)", pyz, len(files), os.path.getsize(pyz))
    return pyz


def main(argv):
    parser = argparse.ArgumentParser(
        prog="fieldpick bundle", allow_abbrev=False,
        description="Build one file to copy to a station board (a Python zipapp; the board supplies numpy).",
    )
    parser.add_argument("--board", required=True, help="one of: %s" % ", ".join(list_profiles()))
    parser.add_argument("--model", help="the .tflite to ship (its card beside it); default: the one in edge/models/")
    parser.add_argument("--no-model", action="store_true",
                        help="build without a model (the selftest then reports what it cannot check)")
    parser.add_argument("--out", default=os.path.join(REPO, "dist"), help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    if args.board not in list_profiles():
        raise ConfigError("unknown board %r; choose one of: %s" % (args.board, ", ".join(list_profiles())))
    model = None
    if not args.no_model:
        model = args.model or default_model()
        if model is None:
            raise ConfigError("edge/models/ holds no model yet; pass --model PATH.tflite, or --no-model "
                              "for a bundle whose selftest says what it cannot check")
        if not os.path.exists(model):
            raise ConfigError("--model %s does not exist" % model)
    pyz = build_bundle(args.board, args.out, model)
    sys.stdout.write("%s  %d bytes, sha256 %s\n" % (pyz, os.path.getsize(pyz), _sha_file(pyz)[:16]))
    with zipfile.ZipFile(pyz) as z:
        demo = json.loads(z.read("fieldpick/boards/" + MANIFEST)).get("demo")
    if demo is not None and "error" in demo:
        sys.stdout.write("WARNING: the demo stream crashed at build time (%s): the selftest will fail\n" % demo["error"])
    elif demo is not None:
        sys.stdout.write("demo stream at build time: %s, %d picks%s\n" % (
            demo["model"], len(demo["picks"]), " (WARNING: no picks: the selftest will fail)" if not demo["picks"] else ""))
    sys.stdout.write("copy it to the board and run:  python3 %s selftest\n" % os.path.basename(pyz))
    sys.stdout.write("it needs numpy from the board's OS:  sudo apt install python3-numpy\n")
    return 0


def _sha_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
