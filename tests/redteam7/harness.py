"""redteam7 main harness: hand-written numpy models (examples as rows), planted bugs,
mixed-dtype gradient dicts, directional and sharded checks.

Run:  cd /work/main && FASTGRAD_QUIET=1 PYTHONPATH=/work/main python tests/redteam7/harness.py SECTION [MODEL...]
SECTION: full | dtype | directional | shard | big
Appends one JSON line per check to tests/redteam7/results_SECTION.jsonl and prints a summary line
(flagging VIOLATION / CHECK for inconclusive correct gradients).
"""
import json
import sys
import time
import os

import numpy as np
import scipy.optimize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastgrad  # noqa: E402
from models import MODELS, BigSoftmax  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------- points
def adam(model, p, steps, lr=0.01):
    p = {k: v.astype(float).copy() for k, v in p.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    for t in range(1, steps + 1):
        g = model.grads(p)
        for k in p:
            m[k] = 0.9 * m[k] + 0.1 * g[k]
            v[k] = 0.999 * v[k] + 0.001 * g[k] ** 2
            p[k] = p[k] - lr * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v[k] / (1 - 0.999 ** t)) + 1e-8)
    return p


def lbfgs(model, p):
    theta, layout = fastgrad.pack(p)

    def f(th):
        q = fastgrad.unpack(th, layout)
        with np.errstate(all="ignore"):
            c = model.cost(q)
            g = np.concatenate([np.ravel(model.grads(q)[k]) for k in layout.names])
        if not np.isfinite(c) or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(th)
        return c, g

    res = scipy.optimize.minimize(f, theta, jac=True, method="L-BFGS-B",
                                  options={"maxiter": 3000, "gtol": 1e-12, "ftol": 1e-15})
    return fastgrad.unpack(res.x, layout)


def points(model, which=("init", "trained", "optimum", "large")):
    r = np.random.default_rng(123)
    p0 = model.init(r)
    out = {}
    if "init" in which:
        out["init"] = p0
    if "trained" in which or "optimum" in which:
        pt = adam(model, p0, 300)
        if "trained" in which:
            out["trained"] = pt
        if "optimum" in which:
            out["optimum"] = lbfgs(model, adam(model, pt, 700))
    if "large" in which:
        out["large"] = {k: 4.0 * v + (0.5 if v.size > 0 else 0) * r.normal(size=v.shape) for k, v in p0.items()}
    return out


# ----------------------------------------------------------------- variants
def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = np.linalg.norm(b)
    return np.linalg.norm(a - b) / n if n > 0 else (np.inf if np.linalg.norm(a) > 0 else 0.0)


def generic_variants(g):
    names = list(g)
    norms = {k: np.linalg.norm(g[k]) for k in names}
    big = max(names, key=lambda k: (np.size(g[k]), norms[k]))
    small = min(names, key=lambda k: (np.size(g[k]), -norms[k]))
    V = {"correct": g}
    for blk in dict.fromkeys([big, small]):
        V[f"signflip:{blk}"] = dict(g, **{blk: -g[blk]})
        V[f"rel1e-3:{blk}"] = dict(g, **{blk: g[blk] * (1 + 1e-3)})
        V[f"rel1e-5:{blk}"] = dict(g, **{blk: g[blk] * (1 + 1e-5)})
    V["whole*(1+1e-3)"] = {k: v * (1 + 1e-3) for k, v in g.items()}
    V["whole*(1+1e-5)"] = {k: v * (1 + 1e-5) for k, v in g.items()}
    if np.size(g[big]) > 1:
        V[f"offbyone_roll:{big}"] = dict(g, **{big: np.roll(np.asarray(g[big]).ravel(), 1).reshape(np.shape(g[big]))})
        one = np.array(g[big], dtype=float).copy()
        j = int(np.argmax(np.abs(one.ravel())))
        one.ravel()[j] *= 1.01
        V[f"onecomp*1.01:{big}"] = dict(g, **{big: one})
    return V


def expected(g_correct, g_bug, layout):
    blocks = []
    worst = 0.0
    for k in layout.names:
        rr = rel(g_bug[k], g_correct[k])
        if rr > 1e-9:
            blocks.append(k)
            worst = max(worst, rr)
    return blocks, worst


def summarize(rep):
    return [(b.name, b.verdict, float(b.difference), float(b.tolerance)) for b in rep.blocks]


def judge(exp_blocks, exp_rel, rep, fail_floor=1e-5, grad_floor=None):
    """Return ('ok'|'VIOLATION'|'CHECK', note)."""
    v = rep.verdict
    fb = sorted(rep.failing_blocks)
    if not exp_blocks:
        if v == "fail":
            return "VIOLATION", "correct gradient FAILS"
        if v == "inconclusive":
            return "CHECK", "correct inconclusive: " + " | ".join(rep.reasons)[:300]
        return "ok", ""
    if exp_rel < fail_floor:
        return "ok", "below floor"
    if v == "fail":
        if fb == sorted(exp_blocks):
            return "ok", ""
        return "VIOLATION", f"fails in wrong blocks {fb} (expected {sorted(exp_blocks)})"
    return ("VIOLATION" if v == "pass" else "CHECK"), f"bug {v}: " + " | ".join(rep.reasons)[:300]


RESULTS = []


def run_check(tag, model, pname, vname, cost, grad, theta, layout, exp_blocks, exp_rel, out, **kw):
    t0 = time.time()
    try:
        rep = fastgrad.gradcheck(cost, grad, theta, layout=layout, progress=False, **kw)
    except Exception as e:  # crash
        dt = time.time() - t0
        rec = dict(tag=tag, model=model, point=pname, variant=vname, status="VIOLATION",
                   note=f"crash {type(e).__name__}: {e}", secs=dt)
        print(json.dumps(rec)); out.write(json.dumps(rec) + "\n"); out.flush()
        return None
    dt = time.time() - t0
    status, note = judge(exp_blocks, exp_rel, rep)
    if dt > 30 and theta.size < 10000:
        note += f" SLOW {dt:.1f}s"
    rec = dict(tag=tag, model=model, point=pname, variant=vname, expected=("fail" if exp_blocks and exp_rel >= 1e-5 else ("pass" if not exp_blocks else "any")),
               exp_blocks=exp_blocks, exp_rel=exp_rel, verdict=rep.verdict, failing=list(rep.failing_blocks),
               blocks=summarize(rep), gnorm=float(np.linalg.norm(theta_grad_norm(grad))), status=status, note=note, secs=round(dt, 2), kw={k: str(v) for k, v in kw.items()})
    out.write(json.dumps(rec) + "\n"); out.flush()
    flag = "" if status == "ok" else f"  <== {status}: {note}"
    print(f"[{tag}] {model:22s} {pname:8s} {vname:40s} exp={rec['expected']:5s} got={rep.verdict:12s} fb={list(rep.failing_blocks)} {dt:5.1f}s{flag}", flush=True)
    return rep


def theta_grad_norm(grad):
    if isinstance(grad, dict):
        return np.concatenate([np.ravel(np.asarray(v, float)) for v in grad.values()])
    return np.asarray(grad, float)


def make_cost(model, layout):
    def cost(theta):
        return model.cost(fastgrad.unpack(theta, layout))
    return cost


# ----------------------------------------------------------------- sections
def section_full(models, out, pts=("init", "trained", "optimum", "large")):
    for M in models:
        m = M()
        for pname, p in points(m, pts).items():
            theta, layout = fastgrad.pack(p)
            cost = make_cost(m, layout)
            g = m.grads(p)
            V = generic_variants(g)
            for bname, gb in m.bugs(p).items():
                V["model:" + bname] = gb
            for vname, gv in V.items():
                eb, er = expected(g, gv, layout)
                run_check("full", m.name, pname, vname, cost, gv, theta, layout, eb, er, out)


def dtype_variants(g, layout):
    """Mixed-dtype dicts. Returns {name: (grad dict, expected blocks, must_fail)}."""
    names = list(layout.names)
    big = max(names, key=lambda k: np.size(g[k]))
    others = [k for k in names if k != big]
    V = {}
    f32 = {k: np.asarray(g[k], np.float32) for k in names}
    # mixed: biggest block float64, the rest float32 ; and the reverse
    mixA = {k: (np.asarray(g[k], np.float64) if k == big else np.asarray(g[k], np.float32)) for k in names}
    mixB = {k: (np.asarray(g[k], np.float32) if k == big else np.asarray(g[k], np.float64)) for k in names}
    V["mixA_correct"] = (mixA, [], True)
    V["mixB_correct"] = (mixB, [], True)
    V["allf32_correct"] = (f32, [], True)
    for r_ in (1e-3, 1e-4, 1e-5):
        V[f"mixA_f64blk_rel{r_:g}:{big}"] = (dict(mixA, **{big: mixA[big] * (1 + r_)}), [big], True)
    o = others[0] if others else None
    if o is not None:
        V[f"mixA_f32blk_signflip:{o}"] = (dict(mixA, **{o: -mixA[o]}), [o], True)
        V[f"mixA_f32blk_rel1e-2:{o}"] = (dict(mixA, **{o: (mixA[o] * np.float32(1.01)).astype(np.float32)}), [o], True)
        V[f"mixA_f32blk_rel1e-5:{o}"] = (dict(mixA, **{o: (mixA[o].astype(float) * (1 + 1e-5)).astype(np.float32)}), [o], False)
        # two bugs: f64 block 1e-5 and f32 block sign flip
        V[f"mixA_both:{big}+{o}"] = (dict(mixA, **{big: mixA[big] * (1 + 1e-5), o: -mixA[o]}), [big, o], True)
        # f32 block correct, f64 other block 1e-5
        V[f"mixB_f64blk_rel1e-5:{o}"] = (dict(mixB, **{o: mixB[o] * (1 + 1e-5)}), [o], True)
        V[f"mixB_f64blk_rel1e-4:{o}"] = (dict(mixB, **{o: mixB[o] * (1 + 1e-4)}), [o], True)
    V[f"mixB_f32blk_signflip:{big}"] = (dict(mixB, **{big: -mixB[big]}), [big], True)
    V[f"mixB_f32blk_rel1e-2:{big}"] = (dict(mixB, **{big: (mixB[big] * np.float32(1.01)).astype(np.float32)}), [big], True)
    # float16 in one block
    if o is not None:
        mixC = dict(mixA, **{o: np.asarray(g[o], np.float16)})
        V[f"mixC_f16:{o}_correct"] = (mixC, [], True)
        V[f"mixC_f16blk_signflip:{o}"] = (dict(mixC, **{o: -mixC[o]}), [o], True)
        V[f"mixC_f64blk_rel1e-5:{big}"] = (dict(mixC, **{big: mixC[big] * (1 + 1e-5)}), [big], True)
    return V


def judge_dtype(exp_blocks, must_fail, rep):
    v = rep.verdict
    fb = sorted(rep.failing_blocks)
    if not exp_blocks:
        if v == "fail":
            return "VIOLATION", "correct mixed-dtype gradient FAILS"
        if v == "inconclusive":
            return "CHECK", "correct inconclusive: " + " | ".join(rep.reasons)[:300]
        return "ok", ""
    if not must_fail:
        if v == "fail" and not set(fb) <= set(exp_blocks):
            return "VIOLATION", f"fails in wrong blocks {fb}"
        return "ok", "(sub-band bug, any verdict ok)"
    if v == "fail":
        return ("ok", "") if fb == sorted(exp_blocks) else ("VIOLATION", f"fails in wrong blocks {fb} (expected {sorted(exp_blocks)})")
    return ("VIOLATION" if v == "pass" else "CHECK"), f"bug {v}: " + " | ".join(rep.reasons)[:300]


def run_dtype(tag, m, pname, vname, cost, grad, theta, layout, eb, must_fail, out, **kw):
    t0 = time.time()
    try:
        rep = fastgrad.gradcheck(cost, grad, theta, layout=layout, progress=False, **kw)
    except Exception as e:
        rec = dict(tag=tag, model=m.name, point=pname, variant=vname, status="VIOLATION", note=f"crash {type(e).__name__}: {e}")
        print(json.dumps(rec)); out.write(json.dumps(rec) + "\n"); out.flush()
        return None
    dt = time.time() - t0
    status, note = judge_dtype(eb, must_fail, rep)
    rec = dict(tag=tag, model=m.name, point=pname, variant=vname, exp_blocks=eb, must_fail=must_fail,
               verdict=rep.verdict, failing=list(rep.failing_blocks), blocks=summarize(rep),
               block_dtypes=str(getattr(rep, "block_dtypes", None)), status=status, note=note, secs=round(dt, 2),
               kw={k: str(v) for k, v in kw.items()})
    out.write(json.dumps(rec) + "\n"); out.flush()
    flag = "" if status == "ok" else f"  <== {status}: {note}"
    print(f"[{tag}] {m.name:22s} {pname:8s} {vname:40s} exp={eb} got={rep.verdict:12s} fb={list(rep.failing_blocks)} {dt:5.1f}s{flag}", flush=True)
    return rep


def section_dtype(models, out, pts=("init", "trained"), **kw):
    tag = kw.pop("tag", "dtype")
    for M in models:
        m = M()
        for pname, p in points(m, pts).items():
            theta, layout = fastgrad.pack(p)
            cost = make_cost(m, layout)
            g = m.grads(p)
            for vname, (gv, eb, mf) in dtype_variants(g, layout).items():
                run_dtype(tag, m, pname, vname, cost, gv, theta, layout, eb, mf, out, **kw)


def section_directional(models, out, pts=("init", "trained")):
    for M in models:
        m = M()
        for pname, p in points(m, pts).items():
            theta, layout = fastgrad.pack(p)
            cost = make_cost(m, layout)
            g = m.grads(p)
            V = generic_variants(g)
            for bname, gb in m.bugs(p).items():
                V["model:" + bname] = gb
            for vname, gv in V.items():
                eb, er = expected(g, gv, layout)
                run_check("dir", m.name, pname, vname, cost, gv, theta, layout, eb, er, out, mode="directional")


def section_shard(models, out, pts=("init", "trained"), dtype=False):
    for M in models:
        m = M()
        for pname, p in points(m, pts).items():
            theta, layout = fastgrad.pack(p)
            cost = make_cost(m, layout)
            g = m.grads(p)
            if dtype:
                V = {k: (gv, eb, mf) for k, (gv, eb, mf) in dtype_variants(g, layout).items()}
            else:
                V = {}
                for vname, gv in generic_variants(g).items():
                    eb, er = expected(g, gv, layout)
                    V[vname] = (gv, eb, er >= 1e-5 or not eb)
            n = theta.size
            rng = np.random.default_rng(5)
            perm = rng.permutation(n)
            splits = {"halves": (np.arange(n // 2), np.arange(n // 2, n)),
                      "random": (np.sort(perm[: n // 3]), np.sort(perm[n // 3:]))}
            for vname, (gv, eb, mf) in V.items():
                for sname, (ia, ib) in splits.items():
                    t0 = time.time()
                    try:
                        ra = fastgrad.gradcheck(cost, gv, theta, layout=layout, indices=ia, progress=False)
                        rb = fastgrad.gradcheck(cost, gv, theta, layout=layout, indices=ib, progress=False)
                        rm = fastgrad.merge_reports(ra, rb)
                    except Exception as e:
                        rec = dict(tag="shard", model=m.name, point=pname, variant=vname, split=sname,
                                   status="VIOLATION", note=f"crash {type(e).__name__}: {e}")
                        print(json.dumps(rec)); out.write(json.dumps(rec) + "\n"); out.flush()
                        continue
                    dt = time.time() - t0
                    status, note = judge_dtype(eb, mf, rm)
                    rec = dict(tag="shard", model=m.name, point=pname, variant=vname, split=sname, exp_blocks=eb,
                               verdict=rm.verdict, failing=list(rm.failing_blocks), a=ra.verdict, b=rb.verdict,
                               blocks=summarize(rm), status=status, note=note, secs=round(dt, 2))
                    out.write(json.dumps(rec) + "\n"); out.flush()
                    flag = "" if status == "ok" else f"  <== {status}: {note}"
                    print(f"[shard-{sname}] {m.name:22s} {pname:8s} {vname:40s} exp={eb} got={rm.verdict}({ra.verdict},{rb.verdict}) fb={list(rm.failing_blocks)} {dt:5.1f}s{flag}", flush=True)


def section_big(out):
    m = BigSoftmax()
    for pname, p in points(m, ("init", "trained")).items():
        theta, layout = fastgrad.pack(p)
        cost = make_cost(m, layout)
        g = m.grads(p)
        V = {"correct": g}
        W = g["W"].copy()
        j = int(np.argsort(np.abs(W.ravel()))[W.size // 2])  # a median-size component
        W1 = W.copy(); W1.ravel()[j] *= -1
        V["one_of_1500_signflip(median comp)"] = dict(g, W=W1)
        W2 = W.copy(); W2.ravel()[j] *= 1.001
        V["one_of_1500_*1.001(median comp)"] = dict(g, W=W2)
        W3 = W.copy(); W3.ravel()[j] += 1e-6 * np.abs(W).max()
        V["one_of_1500_+1e-6max"] = dict(g, W=W3)
        V["b_offbyone"] = dict(g, b=np.roll(g["b"], 1))
        for vname, gv in V.items():
            eb, er = expected(g, gv, layout)
            run_check("big", m.name, pname, vname, cost, gv, theta, layout, eb, er, out)
            if vname == "correct" or "signflip" in vname:
                run_check("big", m.name, pname, vname + "[sample=20]", cost, gv, theta, layout, eb, er, out, sample=20)
                run_check("big", m.name, pname, vname + "[directional]", cost, gv, theta, layout, eb, er, out, mode="directional")


if __name__ == "__main__":
    sec = sys.argv[1]
    sel = sys.argv[2:]
    models = [M for M in MODELS if not sel or M.name in sel]
    with open(os.path.join(HERE, f"results_{sec}.jsonl"), "a") as out:
        t0 = time.time()
        if sec == "full":
            section_full(models, out)
        elif sec == "dtype":
            section_dtype(models, out)
        elif sec == "dtype_dir":
            section_dtype(models, out, tag="dtype_dir", mode="directional")
        elif sec == "directional":
            section_directional(models, out)
        elif sec == "shard":
            section_shard(models, out)
        elif sec == "shard_dtype":
            section_shard(models, out, dtype=True)
        elif sec in ("f32compute",):
            pass
        elif sec == "big":
            section_big(out)
        print("total", round(time.time() - t0, 1), "s")


# ------------------------------------------------ float32-computed back-prop
def f32_grads(model, p):
    """Run the model's own back-prop with float32 data and parameters."""
    import copy
    m32 = copy.copy(model)
    for k, v in vars(model).items():
        if isinstance(v, np.ndarray) and v.dtype == np.float64:
            setattr(m32, k, v.astype(np.float32))
    with np.errstate(all="ignore"):
        g = m32.grads({k: v.astype(np.float32) for k, v in p.items()})
    return {k: np.asarray(v).astype(np.float32) for k, v in g.items()}


def section_f32compute(models, out, modes=("full", "directional", "shard")):
    for M in models:
        m = M()
        for pname, p in points(m, ("init", "trained", "large")).items():
            theta, layout = fastgrad.pack(p)
            cost = make_cost(m, layout)
            g = m.grads(p)
            g32 = f32_grads(m, p)
            names = list(layout.names)
            big = max(names, key=lambda k: np.size(g[k]))
            half = names[: len(names) // 2] or names[:1]
            mixed = {k: (g32[k] if k in half else g[k]) for k in names}
            f64blk = [k for k in names if k not in half]
            V = {"all_f32computed_correct": (g32, [], True),
                 "mixed_f32computed_correct": (mixed, [], True),
                 f"all_f32_signflip:{big}": (dict(g32, **{big: -g32[big]}), [big], True),
                 f"all_f32_rel1e-2:{big}": (dict(g32, **{big: (g32[big] * np.float32(1.01)).astype(np.float32)}), [big], True)}
            if f64blk:
                b = f64blk[0]
                V[f"mixed_f64blk_rel1e-5:{b}"] = (dict(mixed, **{b: g[b] * (1 + 1e-5)}), [b], True)
                V[f"mixed_f64blk_rel1e-4:{b}"] = (dict(mixed, **{b: g[b] * (1 + 1e-4)}), [b], True)
            V[f"mixed_f32blk_signflip:{half[0]}"] = (dict(mixed, **{half[0]: -mixed[half[0]]}), [half[0]], True)
            for vname, (gv, eb, mf) in V.items():
                if "full" in modes:
                    run_dtype("f32c", m, pname, vname, cost, gv, theta, layout, eb, mf, out)
                if "directional" in modes:
                    run_dtype("f32c_dir", m, pname, vname, cost, gv, theta, layout, eb, mf, out, mode="directional")
                if "shard" in modes:
                    n = theta.size
                    ia, ib = np.arange(0, n, 2), np.arange(1, n, 2)
                    try:
                        rm = fastgrad.merge_reports(
                            fastgrad.gradcheck(cost, gv, theta, layout=layout, indices=ia, progress=False),
                            fastgrad.gradcheck(cost, gv, theta, layout=layout, indices=ib, progress=False))
                        status, note = judge_dtype(eb, mf, rm)
                    except Exception as e:
                        status, note, rm = "VIOLATION", f"crash {e}", None
                    rec = dict(tag="f32c_shard", model=m.name, point=pname, variant=vname, exp_blocks=eb,
                               verdict=None if rm is None else rm.verdict, failing=None if rm is None else list(rm.failing_blocks),
                               blocks=None if rm is None else summarize(rm), status=status, note=note)
                    out.write(json.dumps(rec) + "\n"); out.flush()
                    flag = "" if status == "ok" else f"  <== {status}: {note}"
                    print(f"[f32c_shard] {m.name:22s} {pname:8s} {vname:40s} exp={eb} got={None if rm is None else rm.verdict} fb={None if rm is None else list(rm.failing_blocks)}{flag}", flush=True)


if __name__ == "__main__" and sys.argv[1] in ("f32compute", "big2"):
    sel = sys.argv[2:]
    models = [M for M in MODELS if not sel or M.name in sel]
    with open(os.path.join(HERE, f"results_{sys.argv[1]}.jsonl"), "a") as out:
        if sys.argv[1] == "f32compute":
            section_f32compute(models, out)
