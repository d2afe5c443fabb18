import json, sys, collections
A = json.load(open(sys.argv[1])); B = json.load(open(sys.argv[2]))
key = lambda r: (r["fam"], r["Jt"], r["method"], r["bug"])
bm = {key(r): r for r in B}
cnt = collections.defaultdict(collections.Counter)
print("== violations (after) ==")
for r in A:
    b = bm[key(r)]
    fam = r["fam"]
    cnt[fam]["n"] += 1; cnt[fam]["after_" + r["verdict"]] += 1; cnt[fam]["before_" + b["verdict"]] += 1
    if r["bug"] == "exact" and r["verdict"] == "fail": print("EXACT FAIL", key(r), r["J"], r["diff"], r["tol"], r["refrel"])
    if r["bug"] != "exact" and r["verdict"] == "pass": print("BUG PASS", key(r), r["J"], r["diff"], r["tol"], r["truerel"])
    if r["verdict"] == "inconclusive" and not r["reasons"]: print("NO REASON", key(r))
print("== changed verdicts before -> after ==")
for r in A:
    b = bm[key(r)]
    if r["verdict"] != b["verdict"]:
        gr = any("rounding grows where the steps" in x for x in r.get("reasons", []))
        print(f"{str(key(r)):50s} J={r['J']:.1e} {b['verdict']}->{r['verdict']} diff={r['diff']:.2e} tol={r['tol']:.2e} g={r['growth']} growthreason={gr} true={r['truerel']:.1e} fdErr={r['approx_err']:.1e}")
for f, c in cnt.items(): print(f, dict(c))
