"""What a model costs on a board: latency per window, memory, CPU duty cycle, energy per day.

A roofline-with-overhead model, per layer (op) when the per-op work is known and
for the whole model otherwise::

    t_op = overhead[op kind] + flops / (fp32_peak_per_core * fraction_of_fp32_peak)
                             + bytes / (sustained_bandwidth * fraction_of_bandwidth)
    latency = overhead_s_per_window + sum(t_op)               # seconds per window, one core

``overhead[op kind]`` is ``overhead_s_by_op[kind]`` where the kind was
measured and ``overhead_s_per_op`` otherwise: a numpy kernel's fixed Python
cost depends on its kind (a RESHAPE is a view, a SOFTMAX several passes)
more than on its size.  The two fractions are those of the convolution
family (:data:`CONV_OPS`); a runtime block may give the other ops their own
(``other_ops: {fraction_of_fp32_peak, fraction_of_bandwidth}``: an
elementwise pass runs at another speed per FLOP and byte than im2col and a
matmul), else they share the convolutions' figures.

The three terms are added, not overlapped (a roofline's max): a numpy
runtime runs its im2col, matmul and requantise passes one after another.
``fraction_of_fp32_peak``, ``fraction_of_bandwidth`` (default 1) and
``overhead_s_per_op`` describe a runtime on a board
(the numpy interpreter, or XNNPACK behind ai-edge-litert).  They come from the
profile's ``measured`` block when ``fieldpick bench --write-profile`` has been
run on that board, and otherwise from its ``efficiency`` block, which says
whether each figure was measured (and when, with what) or is an estimate.

Duty cycle and energy follow from the window rate::

    windows_per_s = 1 / (window_s * (1 - overlap))            # continuous scan
    duty          = latency * windows_per_s                   # fraction of one core
    gated duty    = duty * gate_open_fraction + trigger cost  # STA/LTA gate in front
    energy/day    = 24 h * (idle_w + (busy_core_w - idle_w) * duty)
    busy_core_w   = idle_w + (all_cores_busy_w - idle_w) / cores

This module imports only the standard library (it travels in station bundles).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from fieldpick.edge.errors import ConfigError

__all__ = [
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "PROFILE_DIR",
    "RUNTIMES",
    "LayerWork",
    "Workload",
    "Operation",
    "Estimate",
    "list_profiles",
    "load_profile",
    "validate_profile",
    "host_profile",
    "efficiency_of",
    "estimate",
]

log = logging.getLogger(__name__)

PROFILE_FORMAT = "fieldpick-board-profile"
PROFILE_VERSION = 1
PROFILE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")
#: runtimes the estimator knows: our numpy interpreter, and XNNPACK (ai-edge-litert)
RUNTIMES = ("numpy", "xnnpack_int8")
#: Python + numpy + fieldpick.edge resident set when nothing else is known (bytes; estimate)
DEFAULT_BASELINE_RSS = 30 * 1024 * 1024
#: cost of the recursive STA/LTA gate when nothing is measured (seconds per sample and
#: component; estimate for a vectorised numpy filter on a packet of 100 samples)
DEFAULT_TRIGGER_S_PER_SAMPLE = 2e-7
SECONDS_PER_DAY = 86400.0


@dataclass
class LayerWork:
    """The work of one op for one window.

    flops: floating-point (or int8) operations, a multiply-accumulate counting 2.
    bytes: bytes the op reads and writes (weights + input + output activations).
    """

    op: str
    flops: int
    bytes: int = 0


@dataclass
class Workload:
    """One model's cost per window, and what it reads.

    layers: per-op work; a single pseudo-op 'model' when only totals are known.
    model_bytes: size of the model file (bytes).  arena_bytes: activation memory
    the runtime plans (bytes; 0 when unknown, then a rough bound is used).
    window_samples: samples per window and channel; sampling_rate_hz: Hz.
    """

    name: str
    layers: List[LayerWork]
    model_bytes: int
    window_samples: int
    sampling_rate_hz: float
    channels: int = 3
    arena_bytes: int = 0

    @property
    def flops(self):
        return sum(lw.flops for lw in self.layers)

    @property
    def window_s(self):
        return self.window_samples / float(self.sampling_rate_hz)

    @classmethod
    def from_card(cls, card, layers=None, arena_bytes=0, op_count=20):
        """Build from a :class:`~fieldpick.edge.card.ModelCard`.

        Without ``layers`` the card's whole-model figures become one op whose
        bytes are the weights plus the window in and out (int8: 1 byte a value),
        followed by ``op_count - 1`` ops of no work (each costs the runtime's
        per-op overhead; 20 ops is a guess for a small picker when the
        interpreter has not counted them).
        """
        if layers is None:
            if card.flops_per_window <= 0:
                raise ConfigError(
                    "model card %r has flops_per_window %r; the estimator needs FLOPs > 0 "
                    "(re-export the model so its card counts them, or pass per-layer work)"
                    % (card.name, card.flops_per_window)
                )
            io = card.input.window_samples * len(card.input.channels) * 2
            layers = [LayerWork("model", int(card.flops_per_window), int(card.model_bytes) + io)]
            layers += [LayerWork("other", 0, 0) for _ in range(max(0, int(op_count) - 1))]
        return cls(
            name=card.name,
            layers=list(layers),
            model_bytes=int(card.model_bytes),
            window_samples=int(card.input.window_samples),
            sampling_rate_hz=float(card.input.sampling_rate_hz),
            channels=len(card.input.channels),
            arena_bytes=int(arena_bytes),
        )


@dataclass
class Operation:
    """How the station runs the model.

    overlap: fraction of a window shared with the next one (0 <= overlap < 1).
    gate_open_fraction: fraction of the time the STA/LTA gate lets windows through
    (gated operation only; 0..1).  ring_seconds: length of the ring buffer (s).
    runtime: one of :data:`RUNTIMES`.
    """

    overlap: float = 0.5
    gate_open_fraction: float = 0.05
    ring_seconds: float = 120.0
    runtime: str = "numpy"

    def validate(self):
        if not (0.0 <= self.overlap < 1.0):
            raise ConfigError("overlap is %r; it must lie in [0, 1)" % (self.overlap,))
        if not (0.0 <= self.gate_open_fraction <= 1.0):
            raise ConfigError("gate_open_fraction is %r; it must lie in [0, 1]" % (self.gate_open_fraction,))
        if self.ring_seconds < 0:
            raise ConfigError("ring_seconds is %r; it must be >= 0" % (self.ring_seconds,))
        if self.runtime not in RUNTIMES:
            raise ConfigError("runtime is %r; allowed: %s" % (self.runtime, ", ".join(map(repr, RUNTIMES))))
        return self


@dataclass
class Estimate:
    """The estimator's answer for one model on one board (units in the names)."""

    board: str
    model: str
    runtime: str
    flops_per_window: int
    latency_s: float
    compute_s: float
    memory_s: float
    overhead_s: float
    memory_bytes: int
    windows_per_s: float
    duty_continuous: float
    duty_gated: float
    cpu_fraction_continuous: float
    energy_wh_per_day_continuous: Optional[float]
    energy_wh_per_day_gated: Optional[float]
    picker_wh_per_day_continuous: Optional[float]
    picker_wh_per_day_gated: Optional[float]
    basis: str
    notes: List[str] = field(default_factory=list)

    def to_dict(self):
        return asdict(self)


# ---------------------------------------------------------------- profiles
_REQUIRED = {
    "cpu": ("model", "arch", "cores", "clock_hz", "fp32_flops_per_cycle", "int8_ops_per_cycle", "int8_dot_product"),
    "memory": ("ram_bytes", "sustained_bandwidth_bytes_per_s"),
    "power": ("idle_w", "all_cores_busy_w"),
    "software": ("os", "python", "glibc"),
}
_TOP = ("format", "version", "name", "title", "written", "cpu", "memory", "power", "software", "efficiency", "measured")


def list_profiles(folder=PROFILE_DIR):
    """Names of the board profiles shipped in ``boards/profiles/`` (sorted)."""
    return sorted(n[:-5] for n in os.listdir(folder) if n.endswith(".json"))


def load_profile(name_or_path, folder=PROFILE_DIR):
    """Read and check one profile: a board name (``rpi4b``), a path, or ``host``."""
    if name_or_path == "host":
        return host_profile()
    path = name_or_path
    if not (os.sep in path or path.endswith(".json")):
        path = os.path.join(folder, name_or_path + ".json")
        if not os.path.exists(path):
            raise ConfigError(
                "unknown board %r; choose one of: %s (or 'host', or a profile .json path)"
                % (name_or_path, ", ".join(list_profiles(folder)))
            )
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ConfigError("cannot read board profile %s: %s" % (path, exc.strerror)) from None
    except ValueError as exc:
        raise ConfigError("board profile %s is not valid JSON: %s" % (path, exc)) from None
    return validate_profile(data, where=os.path.basename(path))


#: the op kinds whose FLOPs and bytes run at the convolution rates (im2col + matmul); the rest are
#: "other_ops".  "CONV" is a bare convolution layer (boards.bench); "model" a whole model from its card.
CONV_OPS = frozenset(("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV", "model"))


def validate_profile(p, where="profile"):
    """Raise :class:`ConfigError` naming the first missing or impossible value; return ``p``."""
    if not isinstance(p, dict):
        raise ConfigError("%s is a JSON %s; expected an object" % (where, type(p).__name__))
    if p.get("format") != PROFILE_FORMAT:
        raise ConfigError("%s has format %r; expected %r" % (where, p.get("format"), PROFILE_FORMAT))
    if p.get("version") != PROFILE_VERSION:
        raise ConfigError(
            "%s is profile version %r; this fieldpick reads version %d" % (where, p.get("version"), PROFILE_VERSION)
        )
    unknown = sorted(set(p) - set(_TOP))
    if unknown:
        raise ConfigError("%s has unknown key(s) %s; allowed: %s" % (where, ", ".join(unknown), ", ".join(_TOP)))
    for block, keys in _REQUIRED.items():
        if not isinstance(p.get(block), dict):
            raise ConfigError("%s has no %r block; it is required" % (where, block))
        for k in keys:
            if k not in p[block]:
                raise ConfigError("%s.%s has no %r; it is required" % (where, block, k))
    for path in (("cpu", "cores"), ("cpu", "clock_hz"), ("cpu", "fp32_flops_per_cycle"),
                 ("memory", "ram_bytes"), ("memory", "sustained_bandwidth_bytes_per_s")):
        v = p[path[0]][path[1]]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ConfigError("%s.%s.%s is %r; it must be a number > 0" % (where, path[0], path[1], v))
    pw = p["power"]
    for k in ("idle_w", "all_cores_busy_w"):
        v = pw[k]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            raise ConfigError("%s.power.%s is %r; it must be a number >= 0 or null" % (where, k, v))
    if pw["idle_w"] is not None and pw["all_cores_busy_w"] is not None and pw["all_cores_busy_w"] < pw["idle_w"]:
        raise ConfigError(
            "%s.power.all_cores_busy_w %r is below idle_w %r" % (where, pw["all_cores_busy_w"], pw["idle_w"])
        )
    for runtime, eff in (p.get("efficiency") or {}).items():
        if runtime not in RUNTIMES:
            raise ConfigError("%s.efficiency has runtime %r; allowed: %s" % (where, runtime, ", ".join(RUNTIMES)))
        _check_eff(eff, "%s.efficiency.%s" % (where, runtime))
    measured = p.get("measured")
    if measured is not None:
        if not isinstance(measured, dict):
            raise ConfigError("%s.measured is %r; expected an object or null" % (where, measured))
        for runtime, eff in (measured.get("runtimes") or {}).items():
            _check_eff(eff, "%s.measured.runtimes.%s" % (where, runtime))
    return p


def _check_eff(eff, where):
    frac = eff.get("fraction_of_fp32_peak")
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not (0 < frac <= 1):
        raise ConfigError("%s.fraction_of_fp32_peak is %r; it must lie in (0, 1]" % (where, frac))
    bwf = eff.get("fraction_of_bandwidth", 1.0)
    if isinstance(bwf, bool) or not isinstance(bwf, (int, float)) or not (0 < bwf <= 1):
        raise ConfigError("%s.fraction_of_bandwidth is %r; it must lie in (0, 1]" % (where, bwf))
    ovh = eff.get("overhead_s_per_op")
    if isinstance(ovh, bool) or not isinstance(ovh, (int, float)) or ovh < 0:
        raise ConfigError("%s.overhead_s_per_op is %r; it must be a number >= 0" % (where, ovh))
    other = eff.get("other_ops")
    if other is not None:
        if not isinstance(other, dict) or set(other) - {"fraction_of_fp32_peak", "fraction_of_bandwidth"}:
            raise ConfigError("%s.other_ops is %r; expected an object with fraction_of_fp32_peak and/or "
                              "fraction_of_bandwidth" % (where, other))
        for k, v in other.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v <= 1):
                raise ConfigError("%s.other_ops.%s is %r; it must lie in (0, 1]" % (where, k, v))


def _fp32_flops_per_cycle_x86(flags):
    # one FMA = 2 FLOPs per lane; two FMA pipes on current server cores (estimate)
    if "avx512f" in flags:
        return 64
    if "avx2" in flags and "fma" in flags:
        return 32
    if "avx" in flags:
        return 16
    return 8


def _cpuinfo(path):
    """(first value of each field, processor count, instruction-set flags, clock MHz) from /proc/cpuinfo."""
    text = ""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        log.warning("cannot read %s; the host profile uses defaults", path)
    fields = {}
    cores = 0
    for line in text.splitlines():
        if ":" not in line:
            continue
        k, v = (s.strip() for s in line.split(":", 1))
        if k == "processor":
            cores += 1
        fields.setdefault(k, v)
    cores = cores or (os.cpu_count() or 1)
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    mhz = 0.0
    try:
        mhz = float(fields.get("cpu MHz", "0"))
    except ValueError:
        pass
    if not mhz:
        try:
            with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
                mhz = int(f.read().strip()) / 1000.0
        except (OSError, ValueError):
            mhz = 1000.0
    return fields, cores, flags, mhz


def _ops_per_cycle(machine, flags):
    """(fp32 FLOPs per cycle, int8 ops per cycle, int8 dot product?) from the instruction-set flags."""
    if machine in ("x86_64", "AMD64", "i686"):
        fpc = _fp32_flops_per_cycle_x86(flags)
        dot = bool(flags & {"avx512_vnni", "avx_vnni"})
        int8 = fpc * 2 if dot else fpc
    else:
        dot = "asimddp" in flags
        fpc = 16 if dot else 8
        int8 = 64 if dot else 16
    return fpc, int8, dot


def _ram_bytes(path):
    """MemTotal of /proc/meminfo in bytes (0: unknown)."""
    try:
        with open(path, "r") as f:
            m = re.search(r"MemTotal:\s+(\d+) kB", f.read())
            return int(m.group(1)) * 1024 if m else 0
    except OSError:
        return 0


def host_profile(cpuinfo="/proc/cpuinfo", meminfo="/proc/meminfo", measured=None):
    """A profile of the machine this runs on, from /proc/cpuinfo and /proc/meminfo.

    FLOPs per cycle are read off the instruction-set flags (an estimate: the
    count of FMA pipes is not in /proc/cpuinfo).  Power is unknown (null), so
    no energy is estimated for the host.  ``measured`` (from ``fieldpick
    bench``) fills the runtime efficiencies; without it they are defaults.
    """
    fields, cores, flags, mhz = _cpuinfo(cpuinfo)
    machine = platform.machine()
    fpc, int8, dot = _ops_per_cycle(machine, flags)
    ram = _ram_bytes(meminfo)
    model = fields.get("model name") or fields.get("Model") or fields.get("Hardware") or machine
    p = {
        "format": PROFILE_FORMAT,
        "version": PROFILE_VERSION,
        "name": "host",
        "title": "this machine (%s, %d cores)" % (model, cores),
        "written": "generated at run time from %s" % cpuinfo,
        "cpu": {
            "model": model,
            "arch": machine,
            "cores": cores,
            "clock_hz": mhz * 1e6,
            "fp32_flops_per_cycle": fpc,
            "int8_ops_per_cycle": int8,
            "int8_dot_product": dot,
            "source": "/proc/cpuinfo; FLOPs/cycle from the instruction-set flags (estimate)",
            "estimate_fields": ["fp32_flops_per_cycle", "int8_ops_per_cycle"],
        },
        "memory": {
            "ram_bytes": ram or 1,
            "sustained_bandwidth_bytes_per_s": 10e9,
            "source": "/proc/meminfo; bandwidth 10 GB/s is a default until 'fieldpick bench' measures it",
            "estimate_fields": ["sustained_bandwidth_bytes_per_s"],
        },
        "power": {"idle_w": None, "all_cores_busy_w": None, "source": "unknown on this machine", "estimate": True},
        "software": {
            "os": _os_release(),
            "python": platform.python_version(),
            "glibc": "-".join(platform.libc_ver()) or "unknown",
        },
        "efficiency": {
            "numpy": {"fraction_of_fp32_peak": 0.05, "overhead_s_per_op": 2e-5, "estimate": True,
                      "note": "default until 'fieldpick bench' measures this machine"},
        },
        "measured": None,
    }
    if measured:
        apply_measured(p, measured)
    return validate_profile(p, where="host profile")


def _os_release():
    try:
        with open("/etc/os-release") as f:
            m = re.search(r'PRETTY_NAME="?([^"\n]+)', f.read())
            return m.group(1) if m else platform.platform()
    except OSError:
        return platform.platform()


def apply_measured(profile, measured):
    """Put a ``fieldpick bench`` result into ``profile['measured']`` (and the bandwidth)."""
    profile["measured"] = measured
    bw = measured.get("bandwidth_bytes_per_s")
    if bw:
        profile["memory"]["sustained_bandwidth_bytes_per_s"] = bw
    return profile


def efficiency_of(profile, runtime):
    """(fraction_of_fp32_peak, fraction_of_bandwidth, overhead_s_per_op, baseline_rss_bytes, basis)."""
    measured = (profile.get("measured") or {}).get("runtimes", {}).get(runtime)
    if measured:
        return (measured["fraction_of_fp32_peak"], measured.get("fraction_of_bandwidth", 1.0),
                measured["overhead_s_per_op"], int(measured.get("baseline_rss_bytes") or DEFAULT_BASELINE_RSS),
                "measured %s" % profile["measured"].get("date", ""))
    eff = (profile.get("efficiency") or {}).get(runtime)
    if not eff:
        raise ConfigError(
            "board %r has no efficiency figures for runtime %r; it has: %s (run 'fieldpick bench "
            "--write-profile' on the board to measure them)"
            % (profile["name"], runtime, ", ".join(sorted(profile.get("efficiency") or {})) or "none")
        )
    basis = "estimate" if eff.get("estimate", True) else "measured (%s)" % eff.get("measured_with", "")
    return (eff["fraction_of_fp32_peak"], eff.get("fraction_of_bandwidth", 1.0), eff["overhead_s_per_op"],
            int(eff.get("baseline_rss_bytes") or DEFAULT_BASELINE_RSS), basis)


def _other_fractions(profile, runtime, frac, bw_frac):
    """(fraction_of_fp32_peak, fraction_of_bandwidth) of the ops outside :data:`CONV_OPS`."""
    block = (profile.get("measured") or {}).get("runtimes", {}).get(runtime) or \
        (profile.get("efficiency") or {}).get(runtime) or {}
    other = block.get("other_ops") or {}
    return other.get("fraction_of_fp32_peak", frac), other.get("fraction_of_bandwidth", bw_frac)


def _overheads(profile, runtime):
    """(fixed cost by op kind, fixed cost per window) of ``runtime``: measured first, else the estimate."""
    block = (profile.get("measured") or {}).get("runtimes", {}).get(runtime) or \
        (profile.get("efficiency") or {}).get(runtime) or {}
    return dict(block.get("overhead_s_by_op") or {}), float(block.get("overhead_s_per_window") or 0.0)


# ---------------------------------------------------------------- the estimate
def estimate(workload, profile, operation=None):
    """Latency, memory, duty cycle and energy of ``workload`` on ``profile``.

    Returns an :class:`Estimate`.  Latency is for one window on one core.
    """
    op = (operation or Operation()).validate()
    frac, bw_frac, overhead, baseline, basis = efficiency_of(profile, op.runtime)
    cpu, mem, pw = profile["cpu"], profile["memory"], profile["power"]
    rate = float(cpu["clock_hz"]) * float(cpu["fp32_flops_per_cycle"]) * frac  # FLOP/s, one core
    bw = float(mem["sustained_bandwidth_bytes_per_s"]) * bw_frac
    o_frac, o_bw_frac = _other_fractions(profile, op.runtime, frac, bw_frac)
    rate_o = float(cpu["clock_hz"]) * float(cpu["fp32_flops_per_cycle"]) * o_frac
    bw_o = float(mem["sustained_bandwidth_bytes_per_s"]) * o_bw_frac
    by_op, per_window = _overheads(profile, op.runtime)
    compute = memory = 0.0
    ovh = total = per_window
    for lw in workload.layers:
        if lw.op in CONV_OPS:
            c, m = lw.flops / rate, lw.bytes / bw
        else:
            c, m = lw.flops / rate_o, lw.bytes / bw_o
        o = by_op.get(lw.op, overhead)
        compute += c
        memory += m
        ovh += o
        total += o + c + m
    notes = []
    arena = workload.arena_bytes
    if not arena:
        # rough bound: 16 feature channels of float32 over the window, twice (in and out)
        arena = workload.window_samples * 16 * 4 * 2
        notes.append("activation memory unknown: assumed %d bytes" % arena)
    ring = int(op.ring_seconds * workload.sampling_rate_hz * workload.channels * 4)
    memory_bytes = int(baseline + workload.model_bytes + arena + ring)
    hop_s = workload.window_s * (1.0 - op.overlap)
    wps = 1.0 / hop_s
    duty = total * wps
    trig = DEFAULT_TRIGGER_S_PER_SAMPLE * workload.sampling_rate_hz * workload.channels
    gated = duty * op.gate_open_fraction + trig
    if duty > 1.0:
        notes.append("one core cannot keep up: %.2f s of work per second of data" % duty)
    e_cont = e_gated = p_cont = p_gated = None
    if pw.get("idle_w") is not None and pw.get("all_cores_busy_w") is not None:
        per_core = (pw["all_cores_busy_w"] - pw["idle_w"]) / float(cpu["cores"])
        hours = SECONDS_PER_DAY / 3600.0
        p_cont = per_core * min(duty, float(cpu["cores"])) * hours
        p_gated = per_core * min(gated, float(cpu["cores"])) * hours
        e_cont = pw["idle_w"] * hours + p_cont
        e_gated = pw["idle_w"] * hours + p_gated
    return Estimate(
        board=profile["name"],
        model=workload.name,
        runtime=op.runtime,
        flops_per_window=workload.flops,
        latency_s=total,
        compute_s=compute,
        memory_s=memory,
        overhead_s=ovh,
        memory_bytes=memory_bytes,
        windows_per_s=wps,
        duty_continuous=duty,
        duty_gated=gated,
        cpu_fraction_continuous=duty / float(cpu["cores"]),
        energy_wh_per_day_continuous=e_cont,
        energy_wh_per_day_gated=e_gated,
        picker_wh_per_day_continuous=p_cont,
        picker_wh_per_day_gated=p_gated,
        basis=basis,
        notes=notes,
    )


def table(estimates):
    """A markdown table of estimates (one row each)."""
    head = ("| board | runtime | latency/window | memory | duty (continuous) | duty (gated) "
            "| Wh/day continuous | Wh/day gated | picker Wh/day (cont./gated) | basis |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for e in estimates:
        def wh(v):
            return "n/a" if v is None else "%.3g" % v
        rows.append("| %s | %s | %.2f ms | %.1f MB | %.3f %% | %.4f %% | %s | %s | %s / %s | %s |" % (
            e.board, e.runtime, e.latency_s * 1e3, e.memory_bytes / 1e6, 100 * e.duty_continuous,
            100 * e.duty_gated, wh(e.energy_wh_per_day_continuous), wh(e.energy_wh_per_day_gated),
            wh(e.picker_wh_per_day_continuous), wh(e.picker_wh_per_day_gated), e.basis))
    return head + "\n".join(rows) + "\n"

