#!/usr/bin/env python3
"""Reads Prometheus text exposition (mmp's GET /metrics) from stdin, parses it with the
reference parser of the prometheus_client package, and prints one line per sample:

    family sample{label="value",...} value

Exit status: 0 parsed, 1 parse error (the message on stderr), 2 prometheus_client missing.
The integration tests pipe the status listener's answer body through it and compare
the printed values with what they did (e.g. logins counted per outcome).
"""
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.stderr.write("metrics_check: the prometheus_client package is not installed\n")
    sys.exit(2)


def labels_text(labels):
    if not labels:
        return ""
    inner = ",".join(
        '%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
        for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


def main():
    text = sys.stdin.read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and others on bad input
        sys.stderr.write("metrics_check: parse error: %s\n" % e)
        return 1
    if not families:
        sys.stderr.write("metrics_check: no metric families\n")
        return 1
    out = []
    for family in families:
        for sample in family.samples:
            value = sample.value
            shown = repr(int(value)) if float(value).is_integer() else repr(value)
            out.append("%s %s%s %s" % (family.name, sample.name, labels_text(sample.labels), shown))
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
