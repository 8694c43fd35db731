"""Weighted least squares and the traces of metafor's projection matrix P, without forming P.

The random-effects model y ~ N(X beta, diag(v + tau2)) is fitted by generalised (weighted) least
squares with weights w = 1 / (v + tau2). Every tau2 estimator and standard error in metafor is
written with

    P = W - W X (X'WX)^-1 X'W,

a k x k matrix. Forming it costs O(k^2) memory and time; the quantities needed are traces and
quadratic forms, all computable in O(k p^2) from the QR decomposition of W^(1/2) X
(Viechtbauer 2005, doi:10.3102/10769986030003261, appendix; metafor's ``rma.uni`` source).

Pure numpy; no pandas, no validation (callers pass clean float arrays).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WeightedFit:
    """Weighted least-squares fit of y on X with weights w.

    Attributes
    ----------
    beta
        Coefficients (X'WX)^-1 X'Wy.
    cov
        (X'WX)^-1, the model-based covariance of ``beta`` (metafor's ``vb`` before any
        Knapp-Hartung scaling).
    resid
        y - X beta.
    rss
        Weighted residual sum of squares sum(w * resid^2) = y'Py.
    weights
        The weights w.
    """

    beta: np.ndarray
    cov: np.ndarray
    resid: np.ndarray
    rss: float
    weights: np.ndarray


def weighted_fit(y: np.ndarray, w: np.ndarray, X: np.ndarray) -> WeightedFit:
    """Weighted least squares (metafor: ``stXWX %*% crossprod(X, W) %*% Y``)."""
    if X.shape[1] == 1:
        x = X[:, 0]
        wx = w * x
        sxx = float(wx @ x)
        b = float(wx @ y) / sxx
        resid = y - b * x
        return WeightedFit(np.array([b]), np.array([[1.0 / sxx]]), resid,
                           float((w * resid) @ resid), w)
    Xw = X * w[:, None]
    cov = np.linalg.inv(Xw.T @ X)
    beta = cov @ (Xw.T @ y)
    resid = y - X @ beta
    return WeightedFit(beta, cov, resid, float((w * resid) @ resid), w)


def is_intercept_only(X: np.ndarray) -> bool:
    """Whether X is a single column of ones (the pooled model)."""
    return X.shape[1] == 1 and bool(np.all(X == 1.0))


class Scorer:
    """The pieces of the ML/REML/EB scoring steps, at any tau2, for fixed (y, v, X).

    Calling it at ``tau2`` returns (y'Py, y'PPy, tr(P), tr(PP), sum(w), sum(w^2)) with
    w = 1/(v + tau2). For the pooled model (X a column of ones, P = W - w w'/sum(w)) every piece
    is a function of the weighted moments sum(w^a y^b), a = 1..3, b = 0..2: a Fisher scoring
    step then costs a handful of numpy calls. ``y`` should be centred (the pooled model is
    invariant to it) to keep the moment formulas free of cancellation.

    Matrix-vector products only: OpenBLAS multithreads even tiny matrix-matrix products, which on
    a busy machine costs more than the arithmetic.
    """

    __slots__ = ("y", "v", "X", "pooled", "_yy", "_powers")

    def __init__(self, y: np.ndarray, v: np.ndarray, X: np.ndarray, pooled: bool | None = None):
        self.y, self.v, self.X = y, v, X
        self.pooled = is_intercept_only(X) if pooled is None else pooled
        if self.pooled:
            self._yy = y * y
            self._powers = np.empty((3, y.size))

    def moments(self, tau2: float) -> tuple[list[float], list[float], list[float]]:
        """Pooled model: (sum w^a for a = 1..3, sum w^a y, sum w^a y^2)."""
        pw = self._powers
        np.divide(1.0, self.v + tau2, out=pw[0])
        np.multiply(pw[0], pw[0], out=pw[1])
        np.multiply(pw[1], pw[0], out=pw[2])
        return pw.sum(axis=1).tolist(), (pw @ self.y).tolist(), (pw @ self._yy).tolist()

    def __call__(self, tau2: float) -> tuple[float, float, float, float, float, float]:
        if self.pooled:
            (sw, sw2, sw3), (swy, sw2y, _), (swyy, sw2yy, _) = self.moments(tau2)
            b = swy / sw
            h = sw2 / sw
            trpp = sw2 - 2.0 * sw3 / sw + h * h
            if not trpp > CANCELLATION * sw2:
                trpp = Projection.at(self._powers[0].copy(), self.X).trace2()
            return (swyy - b * swy, sw2yy - 2.0 * b * sw2y + b * b * sw2, sw - h, trpp, sw,
                    sw2)
        return _general_score_terms(self.y, self.v, self.X, tau2)


def score_terms(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float,
                pooled: bool | None = None) -> tuple[float, float, float, float, float, float]:
    """(y'Py, y'PPy, tr(P), tr(PP), sum(w), sum(w^2)) at ``tau2``; see :class:`Scorer`.

    ``pooled`` says X is a column of ones (checked when ``None``).
    """
    if pooled is None:
        pooled = is_intercept_only(X)
    if pooled:
        return Scorer(y - y.sum() / y.size, v, X, True)(tau2)
    return _general_score_terms(y, v, X, tau2)


def _general_score_terms(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float
                         ) -> tuple[float, float, float, float, float, float]:
    w = 1.0 / (v + tau2)
    sw = float(w.sum())
    sw2 = float(w @ w)
    if X.shape[1] == 1:
        x = X[:, 0]
        wx = w * x
        sxx = float(wx @ x)
        b = float(wx @ y) / sxx
        wr = w * (y - b * x)
        wwx = w * wx
        b2 = float(wwx @ x) / sxx
        b3 = float((w * wwx) @ x) / sxx
        ypy = float(wr @ (y - b * x))
        yppy = float(wr @ wr)
        tr_pp = sw2 - 2.0 * b3 + b2 * b2
        if not tr_pp > CANCELLATION * sw2:
            tr_pp = Projection.at(w, X).trace2()
        return ypy, yppy, sw - b2, tr_pp, sw, sw2
    Xw = X * w[:, None]
    A = np.linalg.inv(Xw.T @ X)
    beta = A @ (Xw.T @ y)
    r = y - X @ beta
    wr = w * r
    AB2 = A @ (Xw.T @ Xw)
    AB3 = A @ ((Xw * w[:, None]).T @ Xw)
    tr_p = sw - float(np.trace(AB2))
    tr_pp = sw2 - 2.0 * float(np.trace(AB3)) + float(np.sum(AB2 * AB2.T))
    if not tr_pp > CANCELLATION * sw2:  # rounding has swamped it (see Projection.trace2)
        tr_pp = Projection.at(w, X).trace2()
    return float(wr @ r), float(wr @ wr), tr_p, tr_pp, sw, sw2


# A difference of sums smaller than this fraction of the sums' size has lost most of its digits
# to rounding (relative error ~ k * 2e-16 / CANCELLATION) and is recomputed without cancellation.
CANCELLATION = 1e-6


def complement_trace2(q: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> float:
    """tr(P D1 P D2) without cancellation: with N an orthonormal basis of the complement of the
    columns of ``q`` (the Q of W^(1/2) X), P = S N N' S, so the trace is sum(M1 * M2) with
    Mi = N' diag(ei) N and ei = w * di.

    Costs O(k^3) (a complete QR); used only when the O(k p^2) formula has cancelled.
    """
    p = q.shape[1]
    full, _ = np.linalg.qr(q, mode="complete")
    n = full[:, p:]
    m1 = (n * e1[:, None]).T @ n
    m2 = (n * e2[:, None]).T @ n
    return float(np.sum(m1 * m2))


@dataclass(frozen=True)
class Projection:
    """Traces of P = W - WX(X'WX)^-1X'W for weights w, via the QR of W^(1/2) X.

    With S = diag(sqrt(w)) and W^(1/2) X = QR, P = S (I - QQ') S, so
    P_ij = s_i s_j (delta_ij - q_i.q_j); ``leverage`` holds |q_i|^2 (the hat values of the
    weighted fit).
    """

    w: np.ndarray
    q: np.ndarray
    leverage: np.ndarray

    @classmethod
    def at(cls, w: np.ndarray, X: np.ndarray) -> Projection:
        if X.shape[1] == 1:  # one column: Q is the normalised column (no LAPACK call)
            col = np.sqrt(w) * X[:, 0]
            col = col / math.sqrt(float(col @ col))
            return cls(w, col[:, None], col * col)
        q, _ = np.linalg.qr(X * np.sqrt(w)[:, None])
        return cls(w, q, np.einsum("ij,ij->i", q, q))

    def trace(self, d: np.ndarray | float = 1.0) -> float:
        """tr(P D) for D = diag(d)."""
        return float(np.sum(self.w * d * (1.0 - self.leverage)))

    def trace2(self, d1: np.ndarray | float = 1.0, d2: np.ndarray | float = 1.0) -> float:
        """sum_ij P_ij^2 d1_i d2_j, i.e. tr(P D1 P D2), for non-negative d1, d2.

        tr(PP) = trace2(), tr(PVPV) = trace2(v, v), sum(PV * P) = trace2(1, v).

        The O(k p^2) formula subtracts terms of size sum(w^2 d1 d2) from each other; when the
        weights span many orders of magnitude the result can be far smaller than they are and
        rounding then swamps it (even below 0). It is recomputed from the orthogonal complement
        of W^(1/2) X, which has no cancellation (see :func:`complement_trace2`).
        """
        e1 = self.w * np.broadcast_to(d1, self.w.shape)
        e2 = self.w * np.broadcast_to(d2, self.w.shape)
        diag = float(np.sum(e1 * e2 * (1.0 - 2.0 * self.leverage)))
        m1 = (self.q * e1[:, None]).T @ self.q
        m2 = (self.q * e2[:, None]).T @ self.q
        fast = diag + float(np.sum(m1 * m2))
        if fast > CANCELLATION * float(np.sum(e1 * e2)):
            return fast
        return complement_trace2(self.q, e1, e2)
