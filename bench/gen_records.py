#!/usr/bin/env python3
"""Generate a synthetic records document for bench/schema/records.xsd.

Deterministic (fixed seed), streaming (writes in chunks, constant memory).

usage: gen_records.py OUT.xml SIZE_MB [--bad-date]

--bad-date puts one invalid xs:date (2019-02-30) in a record near the end, so the
document is well-formed but invalid.
"""
import random
import sys

GIVEN = ["Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Arthur", "Ivy", "Leo",
         "Freya", "Oscar", "Lily", "Harry", "Florence", "Muhammad", "Sophia", "Jack", "Grace",
         "Theo", "Zoë", "Siân", "Rhys", "Aoife", "Chidi", "Priya", "Kacper", "Yusuf"]
FAMILY = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
          "Patel", "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts",
          "Green", "Hall", "O'Brien", "Nowak", "Okafor", "Khan", "Ahmed", "Murphy"]
STREETS = ["High Street", "Station Road", "Church Lane", "Victoria Road", "Green Lane",
           "Manor Road", "Park Avenue", "Mill Lane", "Queens Road", "Kings Close"]
TOWNS = ["Leeds", "Bristol", "Sheffield", "Norwich", "Exeter", "York", "Derby", "Reading",
         "Cardiff", "Swansea", "Carlisle", "Hull"]
SCHOOLS = ["St Mary's Primary", "Oakwood Academy", "Riverside School", "Hillcrest Primary",
           "Northfield High", "Meadow Lane Infants"]
GENDERS = ["male", "female", "other", "unknown"]
KINDS = ["referral", "assessment", "visit", "review", "closure"]
AREAS = ["LS", "BS", "S", "NR", "EX", "YO", "DE", "RG", "CF", "SA", "CA", "HU", "M", "B"]
NOTES = ["Home visit completed; family engaged.", "Follow-up agreed with school & GP.",
         "Parent requested interpreter (Polish).", "No concerns raised at this time.",
         "Case discussed at multi-agency meeting <MASH>."]


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def record(r, n, bad_date):
    y = r.randint(2008, 2024)
    m = r.randint(1, 12)
    d = r.randint(1, 28)
    dob = "2019-02-30" if bad_date else "%04d-%02d-%02d" % (y, m, d)
    upd = ' updated="%04d-%02d-%02dT%02d:%02d:%02dZ"' % (
        2025, r.randint(1, 12), r.randint(1, 28), r.randint(0, 23), r.randint(0, 59),
        r.randint(0, 59)) if r.random() < 0.5 else ""
    out = ['  <Child id="C%09d" la="%d"%s>\n' % (n, r.randint(100, 999), upd),
           "    <NHSNumber>%010d</NHSNumber>\n" % r.randint(0, 9999999999),
           "    <GivenName>%s</GivenName>\n" % r.choice(GIVEN),
           "    <FamilyName>%s</FamilyName>\n" % esc(r.choice(FAMILY)),
           "    <BirthDate>%s</BirthDate>\n" % dob,
           "    <Gender>%s</Gender>\n" % r.choice(GENDERS)]
    cur = "" if r.random() < 0.8 else ' current="false"'
    out.append("    <Address%s>\n" % cur)
    out.append("      <Line>%d %s</Line>\n" % (r.randint(1, 250), r.choice(STREETS)))
    if r.random() < 0.3:
        out.append("      <Line>Flat %d</Line>\n" % r.randint(1, 40))
    out.append("      <Town>%s</Town>\n" % r.choice(TOWNS))
    area = r.choice(AREAS)
    out.append("      <Postcode>%s%d %d%s%s</Postcode>\n" % (
        area, r.randint(1, 29), r.randint(0, 9), chr(65 + r.randint(0, 25)),
        chr(65 + r.randint(0, 25))))
    out.append("    </Address>\n")
    if r.random() < 0.85:
        out.append("    <School>%s</School>\n" % esc(r.choice(SCHOOLS)))
    else:
        out.append("    <NotInEducation>true</NotInEducation>\n")
    if r.random() < 0.4:
        out.append("    <Allowance>%d.%02d</Allowance>\n" % (r.randint(0, 5000), r.randint(0, 99)))
    if r.random() < 0.2:
        out.append("    <DisabilityFlag>%s</DisabilityFlag>\n" % r.choice(["true", "false", "1", "0"]))
    ne = r.randint(0, 3)
    if ne:
        out.append("    <Events>\n")
        for i in range(ne):
            out.append('      <Event seq="%d">\n' % (i + 1))
            out.append("        <At>2025-%02d-%02dT%02d:%02d:00%s</At>\n" % (
                r.randint(1, 12), r.randint(1, 28), r.randint(8, 18), r.randint(0, 59),
                r.choice(["Z", "+01:00", ""])))
            out.append("        <Kind>%s</Kind>\n" % r.choice(KINDS))
            if r.random() < 0.7:
                out.append("        <Worker>%s %s</Worker>\n" % (r.choice(GIVEN), esc(r.choice(FAMILY))))
            else:
                out.append("        <Team>Team %s</Team>\n" % r.choice(TOWNS))
            if r.random() < 0.3:
                out.append("        <Note>%s</Note>\n" % esc(r.choice(NOTES)))
            out.append("      </Event>\n")
        out.append("    </Events>\n")
    out.append("  </Child>\n")
    return "".join(out)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    bad = "--bad-date" in sys.argv
    if len(args) != 2:
        sys.exit(__doc__)
    path, size_mb = args[0], float(args[1])
    target = int(size_mb * 1024 * 1024)
    r = random.Random(20261125)
    written = 0
    n = 0
    bad_done = not bad
    with open(path, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as f:
        head = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<Records xmlns="urn:example:records" version="1.0">\n'
                "  <Header>\n    <Source>bench/gen_records.py</Source>\n"
                "    <Created>2025-11-25T09:00:00Z</Created>\n"
                '    <ReportingPeriod start="2025-04-01" end="2026-03-31"/>\n'
                "  </Header>\n")
        f.write(head)
        written += len(head.encode("utf-8"))
        tail = "</Records>\n"
        buf = []
        buf_len = 0
        while written + buf_len < target - len(tail):
            n += 1
            make_bad = not bad_done and written + buf_len > target * 0.95
            s = record(r, n, make_bad)
            bad_done = bad_done or make_bad
            buf.append(s)
            buf_len += len(s.encode("utf-8"))
            if buf_len > (1 << 20):
                f.write("".join(buf))
                written += buf_len
                buf, buf_len = [], 0
        if not bad_done:
            buf.append(record(r, n + 1, True))
        f.write("".join(buf))
        f.write(tail)


if __name__ == "__main__":
    main()
