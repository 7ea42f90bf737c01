"""Weight initialisers: name -> function(rng, n_in, n_out, dtype) -> W (n_in, n_out)."""
import numpy as np


def he_normal(rng, n_in, n_out, sigma=None):
    """N(0, sqrt(2 / n_in)) (He et al. 2015)."""
    return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))


def he_uniform(rng, n_in, n_out, sigma=None):
    """U(-l, l) with l = sqrt(6 / n_in) (He et al. 2015)."""
    limit = np.sqrt(6.0 / n_in)
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def glorot_normal(rng, n_in, n_out, sigma=None):
    """N(0, sqrt(2 / (n_in + n_out))) (Glorot & Bengio 2010)."""
    return rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), size=(n_in, n_out))


def glorot_uniform(rng, n_in, n_out, sigma=None):
    """U(-l, l) with l = sqrt(6 / (n_in + n_out)) (Glorot & Bengio 2010)."""
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def normal(rng, n_in, n_out, sigma=None):
    """N(0, sigma) with a fixed standard deviation sigma (the DD2424 sigma study)."""
    if sigma is None or not sigma > 0:
        raise ValueError(f"init='normal' needs sigma > 0, got sigma={sigma!r}")
    return rng.normal(0.0, sigma, size=(n_in, n_out))


def uniform(rng, n_in, n_out, sigma=None):
    """U(-limit, limit) with a fixed limit (passed as `sigma`: Dense(init="uniform", limit=...))."""
    if sigma is None or not sigma > 0:
        raise ValueError(f"init='uniform' needs limit > 0, got limit={sigma!r}")
    return rng.uniform(-sigma, sigma, size=(n_in, n_out))


INITIALIZERS = {
    "he_normal": he_normal, "he": he_normal, "he_uniform": he_uniform,
    "glorot_normal": glorot_normal, "glorot_uniform": glorot_uniform, "xavier": glorot_normal,
    "normal": normal, "uniform": uniform,
}


def get_initializer(name):
    """Look up an initialiser by name; ValueError listing the known names otherwise."""
    try:
        return INITIALIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown init {name!r}; choose one of {sorted(INITIALIZERS)}") from None
