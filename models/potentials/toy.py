"""Toy systems for collective-variable learning: 5D Mueller-Brown and 5D three-well models, a seeded Langevin
sampler (Metropolis-adjusted overdamped Langevin, so the sampled distribution is exactly Boltzmann), and exact
basin free energies by numerical integration of the Boltzmann weight over the 2D active subspace."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from models.progress import ProgressFn

Potential2D = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
EnergyGradFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

# Mueller-Brown parameters (Mueller & Brown, Theor. Chim. Acta 1979).
_MB_A = (-200.0, -100.0, -170.0, 15.0)
_MB_a = (-1.0, -1.0, -6.5, 0.7)
_MB_b = (0.0, 0.0, 11.0, 0.6)
_MB_c = (-10.0, -10.0, -6.5, 0.7)
_MB_x0 = (1.0, 0.0, -0.5, -1.0)
_MB_y0 = (0.0, 0.5, 1.5, 1.0)


def mueller_brown_2d(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2D Mueller-Brown energy of points xy (..., 2) and its gradient (..., 2)."""
    x, y = xy[..., 0], xy[..., 1]
    e = np.zeros_like(x)
    gx, gy = np.zeros_like(x), np.zeros_like(x)
    for amp, a, b, c, x0, y0 in zip(_MB_A, _MB_a, _MB_b, _MB_c, _MB_x0, _MB_y0, strict=True):
        dx, dy = x - x0, y - y0
        term = amp * np.exp(a * dx * dx + b * dx * dy + c * dy * dy)
        e += term
        gx += term * (2.0 * a * dx + b * dy)
        gy += term * (b * dx + 2.0 * c * dy)
    return e, np.stack([gx, gy], -1)


def three_well_2d(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2D three-well energy (Metzner, Schuette & Vanden-Eijnden 2006) of points xy (..., 2) and its gradient."""
    x, y = xy[..., 0], xy[..., 1]
    g1 = 3.0 * np.exp(-(x**2) - (y - 1.0 / 3.0) ** 2)
    g2 = -3.0 * np.exp(-(x**2) - (y - 5.0 / 3.0) ** 2)
    g3 = -5.0 * np.exp(-((x - 1.0) ** 2) - y**2)
    g4 = -5.0 * np.exp(-((x + 1.0) ** 2) - y**2)
    e = g1 + g2 + g3 + g4 + 0.2 * x**4 + 0.2 * (y - 1.0 / 3.0) ** 4
    gx = -2.0 * x * (g1 + g2) - 2.0 * (x - 1.0) * g3 - 2.0 * (x + 1.0) * g4 + 0.8 * x**3
    gy = -2.0 * (y - 1.0 / 3.0) * g1 - 2.0 * (y - 5.0 / 3.0) * g2 - 2.0 * y * (g3 + g4) + 0.8 * (y - 1.0 / 3.0) ** 3
    return e, np.stack([gx, gy], -1)


def random_rotation(dim: int, seed: int) -> np.ndarray:
    """A seeded random orthogonal matrix (QR of a Gaussian matrix, sign-fixed), to mix active and harmonic dims."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


@dataclass
class ToySystem:
    """A 2D potential embedded in `dim` dimensions: x = R @ (u_active, u_harmonic), harmonic dims with stiffness
    k_harmonic. Basin rule: a configuration belongs to the nearest minimum in the active plane (Voronoi cells), and
    minimum i belongs to basin `basin_of_minimum[i]` (default: each minimum is its own basin)."""

    name: str
    potential_2d: Potential2D
    kT: float
    minima: np.ndarray
    basin_names: list[str]
    grid_extent: tuple[float, float, float, float]
    k_harmonic: float
    dt: float
    dim: int = 5
    rotation_seed: int | None = 0
    basin_of_minimum: list[int] | None = None
    rotation: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.minima = np.asarray(self.minima, dtype=float)
        seed = self.rotation_seed
        self.rotation = np.eye(self.dim) if seed is None else random_rotation(self.dim, seed)
        if self.basin_of_minimum is None:
            self.basin_of_minimum = list(range(len(self.minima)))

    @property
    def n_basins(self) -> int:
        """Number of basins (states) under the basin rule."""
        return len(self.basin_names)

    def to_internal(self, x: np.ndarray) -> np.ndarray:
        """Cartesian x (..., dim) to internal coordinates u = R^T x (active plane first)."""
        return np.asarray(x, dtype=np.float64) @ self.rotation

    def to_cartesian(self, u: np.ndarray) -> np.ndarray:
        """Internal coordinates u (..., dim) to Cartesian x = R u."""
        return np.asarray(u, dtype=np.float64) @ self.rotation.T

    def energy_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Potential energy of configurations x (n, dim) and its gradient (n, dim), analytic."""
        u = self.to_internal(x)
        e2, g2 = self.potential_2d(u[..., :2])
        h = u[..., 2:]
        grad_u = np.concatenate([g2, self.k_harmonic * h], -1)
        return e2 + 0.5 * self.k_harmonic * (h**2).sum(-1), grad_u @ self.rotation.T

    def energy(self, x: np.ndarray) -> np.ndarray:
        """Potential energy of configurations x (n, dim)."""
        return self.energy_grad(x)[0]

    def active(self, x: np.ndarray) -> np.ndarray:
        """The 2D active-plane coordinates of configurations x (n, dim)."""
        return self.to_internal(x)[..., :2]

    def basin_of(self, x: np.ndarray) -> np.ndarray:
        """Basin index of each configuration: the nearest minimum in the active plane."""
        return self.basin_of_active(self.active(x))

    def basin_of_active(self, xy: np.ndarray) -> np.ndarray:
        """Basin index of active-plane points (n, 2) by the nearest-minimum rule."""
        d2 = ((np.asarray(xy)[..., None, :] - self.minima) ** 2).sum(-1)
        return np.asarray(self.basin_of_minimum)[np.argmin(d2, axis=-1)]

    def minimum_configuration(self, index: int) -> np.ndarray:
        """The Cartesian configuration of minimum `index` (harmonic dims at zero)."""
        u = np.zeros(self.dim)
        u[:2] = self.minima[index]
        return self.rotation @ u

    def grid(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """An n x n grid over the active plane: (xs, ys, energy[ny, nx])."""
        x0, x1, y0, y1 = self.grid_extent
        xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
        xx, yy = np.meshgrid(xs, ys)
        energy, _ = self.potential_2d(np.stack([xx, yy], -1))
        return xs, ys, energy

    def exact_basin_free_energies(self, n_grid: int = 801) -> np.ndarray:
        """Exact basin free energies in kT relative to basin 0: -ln(P_b / P_0), P_b the Boltzmann weight of the
        basin integrated over the active plane (the harmonic dims integrate to the same factor in every basin)."""
        xs, ys, energy = self.grid(n_grid)
        xx, yy = np.meshgrid(xs, ys)
        basin = self.basin_of_active(np.stack([xx, yy], -1))
        logw = -(energy - energy.min()) / self.kT
        weights = np.array([np.exp(logw[basin == b]).sum() for b in range(self.n_basins)])
        return -np.log(weights / weights[0])

    def exact_fes_2d(self, n_grid: int = 201) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exact 2D free-energy surface F(x, y)/kT of the active plane (minimum zero)."""
        xs, ys, energy = self.grid(n_grid)
        return xs, ys, (energy - energy.min()) / self.kT


def mueller_brown_5d(kT: float = 15.0, rotation_seed: int | None = 0) -> ToySystem:
    """5D Mueller-Brown: the 2D surface plus 3 harmonic dims, mixed by a seeded rotation. Two basins: A (the deep
    minimum) and BC (the shallow intermediate B, barely metastable, together with C)."""
    return ToySystem(
        name="mueller_brown_5d",
        potential_2d=mueller_brown_2d,
        kT=kT,
        minima=np.array([[-0.558, 1.442], [-0.050, 0.467], [0.623, 0.028]]),
        basin_names=["A", "BC"],
        basin_of_minimum=[0, 1, 1],
        grid_extent=(-2.0, 1.4, -0.8, 2.4),
        k_harmonic=kT / 0.15**2,
        dt=1.0e-4,
        rotation_seed=rotation_seed,
    )


def three_well_5d(kT: float = 0.5, rotation_seed: int | None = 0) -> ToySystem:
    """5D three-well model: the 2D three-well surface (left, right, top minima) plus 3 harmonic dims, rotated."""
    return ToySystem(
        name="three_well_5d",
        potential_2d=three_well_2d,
        kT=kT,
        minima=np.array([[-1.048, -0.042], [1.048, -0.042], [0.0, 1.54]]),
        basin_names=["left", "right", "top"],
        grid_extent=(-3.0, 3.0, -2.0, 3.2),
        k_harmonic=kT / 0.25**2,
        dt=1.0e-2,
        rotation_seed=rotation_seed,
    )


TOY_SYSTEMS: dict[str, Callable[..., ToySystem]] = {
    "mueller_brown_5d": mueller_brown_5d,
    "three_well_5d": three_well_5d,
}


def get_toy_system(name: str, **kwargs: float) -> ToySystem:
    """A toy system by name; ValueError naming the valid ones otherwise."""
    if name not in TOY_SYSTEMS:
        raise ValueError(f"unknown toy system {name!r}; available: {', '.join(TOY_SYSTEMS)}")
    return TOY_SYSTEMS[name](**kwargs)


@dataclass
class LangevinStats:
    """What a Langevin run reports: the Metropolis acceptance rate (1 when not Metropolized)."""

    acceptance: float


def langevin(
    energy_grad: EnergyGradFn,
    x0: np.ndarray,
    kT: float | np.ndarray,
    dt: float,
    n_steps: int,
    stride: int = 10,
    seed: int = 0,
    metropolize: bool = True,
    callback: ProgressFn | None = None,
    hook: Callable[[int, np.ndarray, np.random.Generator], np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, LangevinStats]:
    """Seeded overdamped Langevin (Euler-Maruyama proposal, Metropolis-adjusted when `metropolize`, i.e. MALA, so the
    stationary distribution is exactly exp(-E/kT)) for a batch of walkers x0 (n, dim); kT may differ per walker.
    `energy_grad(x)` returns energies (n,) and gradients (n, dim). Returns frames every `stride` steps
    (n_frames, n, dim), their energies (n_frames, n), and the acceptance rate. `hook(step, x, rng)` may return new
    positions after a step (e.g. replica exchanges); energies and gradients are then recomputed."""
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=np.float64)
    kt = np.broadcast_to(np.asarray(kT, dtype=np.float64), (x.shape[0],))
    e, g = energy_grad(x)
    frames, energies = [], []
    accepted, tried = 0, 0
    noise_scale = np.sqrt(2.0 * kt * dt)[:, None]
    for step in range(1, n_steps + 1):
        y = x - dt * g + noise_scale * rng.standard_normal(x.shape)
        ey, gy = energy_grad(y)
        if metropolize:
            fwd = ((y - x + dt * g) ** 2).sum(-1)
            bwd = ((x - y + dt * gy) ** 2).sum(-1)
            with np.errstate(invalid="ignore", over="ignore"):
                log_acc = (-(ey - e) - (bwd - fwd) / (4.0 * dt)) / kt
                acc = (np.log(rng.random(x.shape[0])) < log_acc) & np.isfinite(ey)
            x = np.where(acc[:, None], y, x)
            e = np.where(acc, ey, e)
            g = np.where(acc[:, None], gy, g)
            accepted += int(acc.sum())
        else:
            x, e, g = y, ey, gy
            accepted += x.shape[0]
        tried += x.shape[0]
        if hook is not None:
            new = hook(step, x, rng)
            if new is not None:
                x = new
                e, g = energy_grad(x)
        if step % stride == 0:
            frames.append(x.copy())
            energies.append(e.copy())
            if callback is not None:
                callback(step, n_steps, None)
    if not frames:
        frames, energies = [x.copy()], [e.copy()]
    return np.stack(frames), np.stack(energies), LangevinStats(acceptance=accepted / max(tried, 1))


def basin_trajectories(
    system: ToySystem,
    n_walkers: int = 8,
    n_steps: int = 2000,
    stride: int = 10,
    seed: int = 0,
    high_temperature_factor: float | None = None,
    callback: ProgressFn | None = None,
) -> dict[str, np.ndarray]:
    """Training data: short unbiased runs started at each minimum (and, optionally, as many walkers again at a
    higher temperature to visit transition regions). Labels follow the basin rule; energies are at the frame.
    Returns x (n, dim), energy (n,), label (n,), start_basin (n,), temperature_factor (n,)."""
    starts, start_basin, factors = [], [], []
    temps = [1.0] + ([float(high_temperature_factor)] if high_temperature_factor else [])
    for factor in temps:
        for i in range(len(system.minima)):
            starts += [system.minimum_configuration(i)] * n_walkers
            start_basin += [system.basin_of_minimum[i]] * n_walkers
            factors += [factor] * n_walkers
    x0 = np.array(starts)
    kts = system.kT * np.array(factors)
    frames, energies, _ = langevin(system.energy_grad, x0, kts, system.dt, n_steps, stride, seed, callback=callback)
    n_frames = frames.shape[0]
    x = frames.reshape(-1, system.dim)
    return {
        "x": x,
        "energy": energies.reshape(-1),
        "label": system.basin_of(x),
        "start_basin": np.tile(np.array(start_basin), n_frames),
        "temperature_factor": np.tile(np.array(factors), n_frames),
    }
