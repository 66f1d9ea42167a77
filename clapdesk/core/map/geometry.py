"""Questions about points on the map, answered by a KD-tree: never a loop over the points.

What is under the pointer, what a lasso encloses, and which point lies next in a direction
(the arrow keys). Coordinates are the map's own; the view converts from pixels.
"""

from __future__ import annotations

import math

import numpy as np

# Arrow-key walking looks at this many nearest points first, then more when none of them lies
# in the asked direction.
WALK_CANDIDATES = (16, 128, 1024)
WALK_HALF_ANGLE = math.radians(50)


class MapGeometry:
    def __init__(self, positions: np.ndarray) -> None:
        self.positions = np.asarray(positions, np.float64).reshape(-1, 2)
        self.tree = None
        if len(self.positions):
            # Imported here, not at the top: scipy.spatial is about half a second of the
            # window's start-up, and the window starts with an empty map.
            from scipy.spatial import cKDTree

            self.tree = cKDTree(self.positions)

    def __len__(self) -> int:
        return len(self.positions)

    def nearest(self, x: float, y: float, within: float) -> int | None:
        """The index of the point nearest (x, y) no farther than `within`, or None."""
        if self.tree is None:
            return None
        distance, index = self.tree.query((x, y), k=1, distance_upper_bound=within)
        return None if not np.isfinite(distance) else int(index)

    def inside(self, polygon: np.ndarray) -> np.ndarray:
        """Indices of the points inside a closed polygon (a lasso), in index order.

        The tree narrows to the polygon's bounding circle; the even-odd rule then runs over the
        polygon's edges, vectorised over the remaining points."""
        polygon = np.asarray(polygon, np.float64).reshape(-1, 2)
        if self.tree is None or len(polygon) < 3:
            return np.zeros(0, np.int64)
        low, high = polygon.min(axis=0), polygon.max(axis=0)
        centre = (low + high) / 2
        candidates = np.asarray(self.tree.query_ball_point(centre, np.linalg.norm(high - centre)),
                                np.int64)
        if len(candidates) == 0:
            return candidates
        px, py = self.positions[candidates, 0], self.positions[candidates, 1]
        inside = np.zeros(len(candidates), bool)
        x0, y0 = polygon[:, 0], polygon[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        for ax, ay, bx, by in zip(x0, y0, x1, y1):
            crosses = (ay > py) != (by > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                at_x = ax + (py - ay) * (bx - ax) / (by - ay)
            inside ^= crosses & (px < at_x)
        return np.sort(candidates[inside])

    def step(self, index: int, dx: float, dy: float) -> int | None:
        """The nearest point from `index` lying roughly in direction (dx, dy), or None."""
        if self.tree is None or len(self.positions) < 2:
            return None
        origin = self.positions[index]
        heading = math.atan2(dy, dx)
        for k in WALK_CANDIDATES:
            k = min(k, len(self.positions))
            distances, found = self.tree.query(origin, k=k)
            found, distances = np.atleast_1d(found), np.atleast_1d(distances)
            offsets = self.positions[found] - origin
            angles = np.arctan2(offsets[:, 1], offsets[:, 0]) - heading
            angles = np.abs((angles + math.pi) % (2 * math.pi) - math.pi)
            ok = (found != index) & (distances > 0) & (angles <= WALK_HALF_ANGLE)
            if ok.any():
                # Nearest first, but a point straight ahead is preferred to one off at an angle.
                cost = distances * (1 + angles)
                cost[~ok] = np.inf
                return int(found[int(np.argmin(cost))])
            if k == len(self.positions):
                break
        return None
