"""facesortd: sort anime reaction screenshots into emotion folders."""

import os

# OpenCV refuses to decode more pixels than this (its own bomb guard, for formats whose header
# facesortd does not parse itself). Must be set before cv2 is first imported.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))

# One BLAS thread: facesortd already runs work in parallel, and OpenBLAS threads competing with
# another busy process on a 2-core machine made a QR decomposition 200x slower (2.7 s vs 12 ms).
# Must be set before numpy is first imported; a user's explicit setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
