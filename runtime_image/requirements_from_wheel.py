"""Writes the runtime requirements of the wheel in DIST (with the k8s and ui
extras) to OUT, one per line, for the Dockerfile's cached dependency layer.

Usage: python3 requirements_from_wheel.py DIST OUT   (standard library only)
"""

import glob
import sys
import zipfile
from email.parser import Parser

# The image runs the operator (k8s) and the chart's web console (ui).
EXTRAS = ('extra == "k8s"', 'extra == "ui"')


def main(dist: str, out: str) -> None:
    (wheel,) = glob.glob(f"{dist}/*.whl")
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        headers = Parser().parsestr(z.read(meta).decode())
    lines = []
    for req in headers.get_all("Requires-Dist") or []:
        spec, _, marker = (part.strip() for part in req.partition(";"))
        if "extra ==" in marker:
            if marker.replace("'", '"') in EXTRAS:
                lines.append(spec)
        else:
            lines.append(f"{spec}; {marker}" if marker else spec)
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
