#!/usr/bin/env bash
# Memory on a pathological content model: a huge *finite* maxOccurs makes a new automaton state
# per repetition, so the validator must compact its state arena to stay bounded. Prints the time
# and peak RSS of validating N (default 2,000,000) repetitions of a maxOccurs="5000000" element.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bench/out"
n=${N:-2000000}
mkdir -p "$out"
cd "$root"
cargo build --release --quiet
cat > "$out/counters.xsd" <<'XSD'
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="r"><xs:complexType><xs:sequence>
    <xs:element name="a" type="xs:int" maxOccurs="5000000"/>
    <xs:element name="z" minOccurs="0"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>
XSD
python3 - "$out/counters.xml" "$n" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("<r>")
    for i in range(0, n, 10000):
        f.write("".join("<a>%d</a>" % j for j in range(i, min(n, i + 10000))))
    f.write("<z/></r>")
PY
echo "repetitions: $n ($(du -m "$out/counters.xml" | cut -f1) MB)"
/usr/bin/time -f "seconds: %e  peak RSS: %M KB" target/release/gateway validate --schema "$out/counters.xsd" "$out/counters.xml"
rm -f "$out/counters.xml"
