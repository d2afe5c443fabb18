import sys, json, time, traceback, numpy as np
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import fastgrad
from cases import *
from fastgrad import Layout
out = sys.argv[1]; fams = sys.argv[2].split(",")
Js = [float(v) for v in sys.argv[3].split(",")] if len(sys.argv) > 3 else [1e0, 1e-6, 1e-10, 1e-14, 1e-18]
methods = sys.argv[4].split(",") if len(sys.argv) > 4 else ["central"]
res = []
t0 = time.time()
for fam in fams:
    for Jt in Js:
        seed = 7
        if fam == "linreg": J, gf, ref, names, shapes, star, dirn = make_linreg(seed, Jt)
        elif fam == "linreg_y100": J, gf, ref, names, shapes, star, dirn = make_linreg(seed, Jt, yscale=100.0)
        elif fam == "linreg_f32": J, gf, ref, names, shapes, star, dirn = make_linreg(seed, Jt, f32=True)
        elif fam == "logkl": J, gf, ref, names, shapes, star, dirn = make_logkl(seed, Jt)
        elif fam == "logsep": J, gf, ref, names, shapes, star, dirn = make_logsep(seed, Jt)
        elif fam == "mlp": J, gf, ref, names, shapes, star, dirn = make_mlp(seed, Jt)
        elif fam == "mlp_f32": J, gf, ref, names, shapes, star, dirn = make_mlp(seed, Jt, f32=True)
        th = place(J, star, dirn, Jt)
        lay = Layout(names, shapes)
        exact = pack(gf(th), names); r = ref(th)
        refrel = float(np.linalg.norm(exact - r) / np.linalg.norm(r))
        for method in methods:
            for bug in BUGS:
                g = buggy(gf, th, names, bug)
                gv = pack(g, names)
                truerel = float(np.linalg.norm(gv - r) / (np.linalg.norm(gv) + np.linalg.norm(r)))
                rec = dict(fam=fam, Jt=Jt, J=J(th), method=method, bug=bug, refrel=refrel, truerel=truerel)
                try:
                    rep = fastgrad.gradcheck(J, g, th, layout=lay, method=method, progress=False)
                    rec.update(verdict=rep.verdict, diff=float(rep.difference), tol=float(rep.tolerance),
                               reasons=list(rep.reasons), blocks={b.name: b.verdict for b in rep.blocks},
                               growth=None if getattr(rep, "growth", None) is None else float(np.max(rep.growth)),
                               approx_err=float(np.linalg.norm(np.asarray(rep.approx) - r[np.asarray(rep.indices)] if rep.indices is not None else np.asarray(rep.approx) - r) / np.linalg.norm(r)))
                except Exception as e:
                    rec.update(verdict="CRASH", err=traceback.format_exc()[-800:])
                res.append(rec)
                print(f"{fam:12s} J={rec['J']:.1e} {method:10s} {bug:9s} {rec['verdict']:12s} diff={rec.get('diff',0):.2e} tol={rec.get('tol',0):.2e} g={rec.get('growth')} true={truerel:.1e} refrel={refrel:.1e} fdErr={rec.get('approx_err',0):.1e}", flush=True)
json.dump(res, open(out, "w"), indent=1)
print("elapsed", time.time() - t0)
