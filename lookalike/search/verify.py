"""Is it the same photo? Geometric verification of a near-duplicate candidate with local features.

Embedding distances rank candidates but cannot prove that two images are one photo: different
pictures of one kind (five hammers, two palaces) can sit closer than a heavy edit of one photo.
:func:`verify_pair` checks the claim the way a person would, by finding the same details at
consistent places: ORB keypoints of both images (grey, longest side :data:`SIDE` pixels) are
matched (nearest neighbours passing Lowe's ratio test, one per feature), then a similarity transform
(rotation, uniform scale, shift: what resizing, cropping, small rotations and re-encoding do) is
fitted with RANSAC. The images are the same photo when at least :data:`MIN_INLIERS` matches agree
with that transform, they make at least :data:`MIN_RATIO` of the matches, and they cover the
overlap (not one repeated detail). Different views of one scene (a stereo pair) fail the
similarity fit on parallax; different objects fail the match.

Needs OpenCV (``opencv-python-headless``, a dependency of lookalike); a clear
:class:`VerifierMissingError` is raised when it cannot be imported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from lookalike.errors import ImageLoadError, LookalikeError

log = logging.getLogger(__name__)

#: Longest side (pixels) of the grey image features are computed on.
SIDE = 512
#: ORB keypoints per image.
FEATURES = 1000
#: Lowe's ratio test on Hamming distances of the two nearest descriptors.
RATIO = 0.8
#: RANSAC reprojection tolerance, as a fraction of the longest side (about 3 px at 512).
TOLERANCE = 0.006
#: Decision rule: matches consistent with one similarity transform, and their share of all matches.
MIN_INLIERS, MIN_RATIO = 20, 0.35
#: The convex hull of the agreeing features must cover this share of each image.
MIN_SPREAD = 0.03


class VerifierMissingError(LookalikeError):
    """OpenCV, which geometric verification needs, is not installed."""

    exit_code = 2


def opencv() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise VerifierMissingError(
            "near-duplicate verification needs OpenCV: pip install opencv-python-headless "
            f"(or pass --no-verify to group by embedding distance alone): {exc}") from exc
    return cv2


@dataclass(frozen=True)
class Features:
    """ORB keypoints (``points``: ``(n, 2)`` float32, in the resized image) and descriptors."""

    points: np.ndarray
    descriptors: np.ndarray | None
    size: tuple[int, int]  # resized (width, height)


@dataclass(frozen=True)
class Verification:
    """The evidence for (or against) "same photo": matched features and how many agree."""

    same: bool
    inliers: int
    matches: int
    scale: float | None = None  # of the fitted similarity transform (b -> a), when one was found
    rotation: float | None = None  # degrees
    spread: float = 0.0  # share of each image (the smaller share) the agreeing features cover

    @property
    def ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "inliers": self.inliers, "matches": self.matches,
                "ratio": round(self.ratio, 4), "scale": self.scale, "rotation": self.rotation,
                "spread": self.spread}


def features(image: Image.Image | np.ndarray | str | os.PathLike[str], side: int = SIDE,
             n_features: int = FEATURES) -> Features:
    """ORB features of an image (a PIL image, an RGB/grey array, or a file path)."""
    cv2 = opencv()
    if isinstance(image, (str, os.PathLike)):
        from lookalike.embed.images import load_image

        image = load_image(image, draft=side)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("L"))
    grey = np.asarray(image)
    if grey.ndim == 3:
        grey = cv2.cvtColor(np.ascontiguousarray(grey[..., :3]), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape[:2]
    scale = side / max(h, w)  # thumbnails are enlarged: ORB finds next to nothing in 80 px
    if scale != 1:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    h, w = grey.shape[:2]
    orb = cv2.ORB_create(nfeatures=n_features, fastThreshold=10)
    keypoints, descriptors = orb.detectAndCompute(np.ascontiguousarray(grey, dtype=np.uint8), None)
    points = np.float32([k.pt for k in keypoints]).reshape(-1, 2)
    return Features(points, descriptors, (w, h))


def _matches(a: Features, b: Features) -> tuple[np.ndarray, np.ndarray]:
    """Ratio-test matches, at most one per feature of ``b`` (the closest): row indices into
    ``a.points`` and ``b.points``."""
    cv2 = opencv()
    if a.descriptors is None or b.descriptors is None or len(a.points) < 2 or len(b.points) < 2:
        return np.zeros(0, int), np.zeros(0, int)
    best: dict[int, tuple[float, int]] = {}
    for pair in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2):
        if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance:
            m = pair[0]
            if m.trainIdx not in best or m.distance < best[m.trainIdx][0]:
                best[m.trainIdx] = (m.distance, m.queryIdx)
    ib = np.fromiter(best, int, len(best))
    ia = np.fromiter((q for _, q in best.values()), int, len(best))
    return ia, ib


def verify_features(a: Features, b: Features, min_inliers: int = MIN_INLIERS,
                    min_ratio: float = MIN_RATIO) -> Verification:
    """Decide "same photo" from two images' features (see the module docstring)."""
    cv2 = opencv()
    ia, ib = _matches(a, b)
    if len(ia) < max(4, min_inliers):
        return Verification(False, 0, len(ia))
    pa, pb = a.points[ia], b.points[ib]
    tol = TOLERANCE * max(*a.size, *b.size)
    model, mask = cv2.estimateAffinePartial2D(pb, pa, method=cv2.RANSAC, ransacReprojThreshold=tol,
                                              maxIters=1000, confidence=0.999)
    if model is None or mask is None:
        return Verification(False, 0, len(ia))
    inl = mask.ravel().astype(bool)
    n_in = int(inl.sum())
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    rotation = float(np.degrees(np.arctan2(model[1, 0], model[0, 0])))
    # the agreeing details must spread over the picture, not sit on one small repeated pattern
    spread = min(_hull_share(pa[inl], a.size), _hull_share(pb[inl], b.size)) if n_in >= 3 else 0.0
    same = n_in >= min_inliers and n_in / len(ia) >= min_ratio and spread >= MIN_SPREAD
    return Verification(same, n_in, len(ia), round(scale, 4), round(rotation, 2), round(spread, 4))


def _hull_share(points: np.ndarray, size: tuple[int, int]) -> float:
    """Area of the convex hull of ``points`` as a share of the image area."""
    cv2 = opencv()
    hull = cv2.convexHull(np.ascontiguousarray(points, dtype=np.float32))
    return float(cv2.contourArea(hull)) / float(size[0] * size[1])


def verify_pair(a: Image.Image | np.ndarray | str | os.PathLike[str],
                b: Image.Image | np.ndarray | str | os.PathLike[str]) -> Verification:
    """Are ``a`` and ``b`` the same photo (one a resized / cropped / rotated / re-encoded / colour
    adjusted version of the other)? Images or file paths."""
    return verify_features(features(a), features(b))


class PairVerifier:
    """Geometric verification of pairs of images, each image's features computed once.

    Images are named by keys; ``sources`` maps a key to what is read (a path, a PIL image, an
    array), and a key without one is read as a path. An image that cannot be read (moved or
    changed since indexing) has no features: it is logged at ``unreadable`` level and its pairs
    verify as ``None``. :meth:`check` verifies many pairs in threads (OpenCV releases the GIL).
    """

    def __init__(self, sources: Mapping[Hashable, Any] | None = None, unreadable: int = logging.WARNING) -> None:
        self.sources = dict(sources or {})
        self.unreadable = unreadable
        self._features: dict[Hashable, Features | None] = {}
        self._results: dict[tuple[Hashable, Hashable], Verification | None] = {}

    def features(self, key: Hashable) -> Features | None:
        if key not in self._features:
            source = self.sources.get(key, key)
            try:
                self._features[key] = features(source)
            except (ImageLoadError, OSError, VerifierMissingError) as exc:
                log.log(self.unreadable, "cannot verify %s: %s",
                        source if isinstance(source, (str, os.PathLike)) else key, exc)
                self._features[key] = None
        return self._features[key]

    def verify(self, a: Hashable, b: Hashable) -> Verification | None:
        """Is ``a`` the same photo as ``b`` (:func:`verify_features` in that order)? ``None`` when
        either image has no features."""
        if (a, b) not in self._results:
            fa, fb = self.features(a), self.features(b)
            self._results[a, b] = verify_features(fa, fb) if fa is not None and fb is not None else None
        return self._results[a, b]

    def check(self, pairs: Sequence[tuple[Hashable, Hashable]]) -> list[Verification | None]:
        """:meth:`verify` of every pair, features computed in threads first. Raises
        :class:`VerifierMissingError` before any work when OpenCV is missing."""
        from concurrent.futures import ThreadPoolExecutor

        opencv()
        keys = list(dict.fromkeys(k for p in pairs for k in p))
        with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
            list(pool.map(self.features, keys))
            return list(pool.map(lambda p: self.verify(*p), pairs))
