"""Input augmentation for training batches (applied in the compiled loop)."""
import numpy as np

from . import _validation as V
from .kernels.augment import N_AUG


class Augment:
    """Random input perturbations applied to each training batch, seeded and
    counter-based (the same on any thread count); evaluation data are never changed.

    noise_std: Gaussian noise N(0, noise_std^2) added to every input (DD2424: 0.01).
    salt_pepper: fraction of inputs replaced, half by `pepper`, half by `salt`
        (defaults: the training data's min and max).
    shift: random translations of up to `shift` pixels in each direction;
    rotate: random rotations of up to `rotate` degrees; flip: random horizontal
        flips. These need image_shape (height, width) or (channels, height, width)
        for rows stored channel-major (MNIST 28x28, CIFAR-10 3x32x32).
    """

    def __init__(self, noise_std=0.0, salt_pepper=0.0, shift=0, rotate=0.0, flip=False,
                 image_shape=None, pepper=None, salt=None):
        V.check_number(noise_std, "noise_std", 0.0)
        if not 0.0 <= V.check_number(salt_pepper, "salt_pepper", 0.0) < 1.0:
            raise ValueError(f"salt_pepper must be in [0, 1), got {salt_pepper!r}")
        shift = V.check_count(shift, "shift", 0)
        rotate = V.check_number(rotate, "rotate (degrees)", 0.0, 180.0)
        for name, value in (("pepper", pepper), ("salt", salt)):
            if value is not None:
                V.check_number(value, name)
        geometric = shift > 0 or rotate > 0 or flip
        if image_shape is not None:
            if not isinstance(image_shape, (tuple, list)):
                raise ValueError(f"image_shape must be (height, width) or (channels, height, "
                                 f"width), got {image_shape!r}")
            image_shape = tuple(V.check_count(v, "image_shape", 1) for v in image_shape)
            if len(image_shape) == 2:
                image_shape = (1,) + image_shape
            if len(image_shape) != 3 or min(image_shape) < 1:
                raise ValueError(f"image_shape must be (height, width) or (channels, height, "
                                 f"width), got {image_shape!r}")
        if geometric and image_shape is None:
            raise ValueError("shift, rotate and flip need image_shape, e.g. (28, 28) or (3, 32, 32)")
        self.noise_std, self.salt_pepper = float(noise_std), float(salt_pepper)
        self.shift, self.rotate, self.flip = int(shift), float(rotate), bool(flip)
        self.image_shape, self.pepper, self.salt = image_shape, pepper, salt

    def hyper(self, X):
        """float64 parameters for the kernel; checks image_shape against X (n, d)."""
        if self.image_shape is not None and int(np.prod(self.image_shape)) != X.shape[1]:
            raise ValueError(f"image_shape {self.image_shape} has {int(np.prod(self.image_shape))}"
                             f" values but X rows have {X.shape[1]}")
        pepper = float(X.min()) if self.pepper is None and self.salt_pepper else (self.pepper or 0.0)
        salt = float(X.max()) if self.salt is None and self.salt_pepper else (self.salt or 0.0)
        shape = self.image_shape or (0, 0, 0)
        h = np.array([self.noise_std, self.salt_pepper, pepper, salt, self.shift, self.rotate,
                      float(self.flip), *shape], dtype=np.float64)
        assert h.shape == (N_AUG,)
        return h

    def config(self):
        return {"noise_std": self.noise_std, "salt_pepper": self.salt_pepper, "shift": self.shift,
                "rotate": self.rotate, "flip": self.flip, "image_shape": self.image_shape,
                "pepper": self.pepper, "salt": self.salt}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if v not in (None, 0, 0.0, False))
        return f"Augment({args})"
