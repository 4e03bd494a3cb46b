#!/usr/bin/env python3
"""Writes broker/service/src/console/europe.txt: one line per European country,
`ALPHA2 <tab> SVG path`, projected for the console's map.

Source: npm `world-atlas` 2.0.2, `countries-50m.json` (Natural Earth 1:50m, public domain),
fetched with `npm pack world-atlas@2.0.2`. Run once by hand when the map changes:

    python3 scripts/console-map.py path/to/package/countries-50m.json

Projection: Lambert azimuthal equal-area centred on 10°E 52°N (as EU maps use), scaled to a
1000 x 800 box over Europe; rings are decimated (points closer than half a pixel dropped).
"""
import json
import math
import sys

# ISO 3166-1 numeric -> alpha-2, for Europe and its neighbours drawn on the map.
ALPHA2 = {
    "008": "AL", "020": "AD", "040": "AT", "056": "BE", "070": "BA", "100": "BG", "112": "BY",
    "191": "HR", "196": "CY", "203": "CZ", "208": "DK", "233": "EE", "246": "FI", "250": "FR",
    "276": "DE", "300": "GR", "348": "HU", "352": "IS", "372": "IE", "380": "IT", "428": "LV",
    "438": "LI", "440": "LT", "442": "LU", "470": "MT", "492": "MC", "498": "MD", "499": "ME",
    "528": "NL", "807": "MK", "578": "NO", "616": "PL", "620": "PT", "642": "RO", "643": "RU",
    "674": "SM", "688": "RS", "703": "SK", "705": "SI", "724": "ES", "752": "SE", "756": "CH",
    "792": "TR", "804": "UA", "826": "GB", "336": "VA", "-99": "XK", "248": "AX",
}

LON0, LAT0 = math.radians(10), math.radians(52)
WIDTH, HEIGHT = 1000, 800
# The box drawn, in projected units (about Iceland to Cyprus, Portugal to the Urals' foot).
X0, X1, Y0, Y1 = -0.42, 0.52, -0.42, 0.33


def project(lon, lat):
    lam, phi = math.radians(lon), math.radians(lat)
    k = math.sqrt(2 / (1 + math.sin(LAT0) * math.sin(phi) + math.cos(LAT0) * math.cos(phi) * math.cos(lam - LON0)))
    x = k * math.cos(phi) * math.sin(lam - LON0)
    y = k * (math.cos(LAT0) * math.sin(phi) - math.sin(LAT0) * math.cos(phi) * math.cos(lam - LON0))
    return (x - X0) / (X1 - X0) * WIDTH, (Y1 - y) / (Y1 - Y0) * HEIGHT


def main(path):
    topo = json.load(open(path))
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)

    def ring(indexes):
        points = []
        for i in indexes:
            a = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
            points.extend(a if not points else a[1:])
        return points

    out = []
    for geometry in topo["objects"]["countries"]["geometries"]:
        code = ALPHA2.get(str(geometry.get("id")))
        if not code:
            continue
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        d = []
        for polygon in polygons:
            for r in polygon:
                pts = [project(lon, lat) for lon, lat in ring(r) if -30 < lon < 60 and 30 < lat < 75]
                kept = []
                for p in pts:
                    if not kept or abs(p[0] - kept[-1][0]) + abs(p[1] - kept[-1][1]) >= 0.5:
                        kept.append(p)
                if len(kept) < 3 or all(not (0 <= x <= WIDTH and 0 <= y <= HEIGHT) for x, y in kept):
                    continue
                d.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in kept) + "Z")
        if d:
            out.append(f"{code}\t{''.join(d)}")
    out.sort()
    with open("broker/service/src/console/europe.txt", "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"{len(out)} countries")


if __name__ == "__main__":
    main(sys.argv[1])
