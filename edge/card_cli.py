"""``fieldpick card PATH``: show a model card and check it against its model file."""

import argparse
import json
import sys

from .card import ModelCard


def main(argv):
    parser = argparse.ArgumentParser(
        prog="fieldpick card", description="Validate a model card (.json) and the sha256 of its model file."
    )
    parser.add_argument("card", help="path to <name>.json beside <name>.tflite")
    parser.add_argument("--no-verify", action="store_true", help="skip the model file's size and sha256 check")
    parser.add_argument("--json", action="store_true", help="print the whole card as JSON")
    args = parser.parse_args(argv)
    card = ModelCard.load(args.card, verify=not args.no_verify)
    if args.json:
        sys.stdout.write(json.dumps(card.to_dict(), indent=2) + "\n")
        return 0
    i, o = card.input, card.output
    lines = [
        "%s (%s)" % (card.name, card.architecture),
        "  input : %d samples at %g Hz (%.2f s), channels %s, layout %s, normalise %s/%s"
        % (i.window_samples, i.sampling_rate_hz, i.window_seconds, "".join(i.channels), i.layout,
           i.normalisation.detrend, i.normalisation.scale),
        "  output: %s, labels %s, stride %d samples" % (o.kind, ",".join(o.labels), o.stride_samples),
        "  thresholds: %s" % ", ".join("%s=%.2f" % kv for kv in sorted(card.thresholds.items())),
        "  %s, %d parameters, %d FLOPs per window, %d bytes" % (
            card.quantisation.scheme, card.parameters, card.flops_per_window, card.model_bytes),
        "  model file %s sha256 %s %s" % (card.model_file, card.sha256[:16], "(checked)" if not args.no_verify else "(not checked)"),
    ]
    for m in card.metrics:
        lines.append("  metrics on %s [%s]: %s" % (m.data, m.split, ", ".join("%s=%.3g" % kv for kv in sorted(m.values.items()))))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
