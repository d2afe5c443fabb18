"""External catalogue of gradient-check cases, written against fastgrad's public API only.

The conventions here are deliberately not fastgrad's own: examples are rows,
weights are shaped ``(n_in, n_out)`` and named ``layer0.weight``; scikit-learn's
networks are checked through their own loss and gradient; Rosenbrock runs as a
compiled cost at n = 100,000. See :mod:`tests.external.cases`.
"""
