"""``fieldpick demo``: the bundled model on a synthetic hour, scored against the truth.

The pieces it needs (the numpy TFLite interpreter, the station pipeline and
a committed default model) are built by later issues; until they are all
present this command says what it will do and exits with status 3.
"""

import argparse
import os
import sys

PLAN = """\
fieldpick demo will:
  1. synthesise one hour of 3-component 100 Hz data with earthquakes at known times;
  2. load the bundled default int8 model (edge/models/<default>.tflite and its card);
  3. stream the hour through the station pipeline (ring buffer, STA/LTA gate,
     numpy TFLite interpreter, picker) in packets, as a digitizer would;
  4. compare the picks with the truth (precision, recall, F1, residuals) and
     report the speed against real time.
"""


def _missing():
    here = os.path.dirname(os.path.abspath(__file__))
    missing = []
    models = os.path.join(here, "models")
    if not any(n.endswith(".tflite") for n in os.listdir(models)) if os.path.isdir(models) else True:
        missing.append("a bundled default model in edge/models/ (issues 5 and 9)")
    for mod, issue in (("station.py", 12), ("tflite/interpreter.py", 6)):
        if not os.path.exists(os.path.join(here, mod)):
            missing.append("edge/%s (issue %d)" % (mod, issue))
    return missing


def main(argv):
    parser = argparse.ArgumentParser(prog="fieldpick demo", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the synthetic stream (minutes)")
    parser.parse_args(argv)
    missing = _missing()
    sys.stdout.write(PLAN)
    if missing:
        sys.stdout.write("\nnot yet possible in this build; missing:\n")
        for m in missing:
            sys.stdout.write("  - %s\n" % m)
        return 3
    from .station import run_demo  # noqa: F401  (present once issue 12 lands)

    return run_demo(argv)
