"""facesortd: sort anime reaction screenshots into emotion folders."""

import os

DEFAULT_MAX_PIXELS = 60_000_000
"""images.max_pixels unless configured: larger images are 'unreadable' (decompression bombs)."""

# OpenCV refuses to decode more pixels than this: its own bomb guard, behind facesortd's header
# checks. It reads the variable once, when cv2 is first imported, before any config file is
# read, so it follows images.max_pixels as far as the environment gives it.
os.environ.setdefault(
    "OPENCV_IO_MAX_IMAGE_PIXELS", os.environ.get("FACESORTD_IMAGES__MAX_PIXELS", str(DEFAULT_MAX_PIXELS))
)

# OpenCV's own log lines ("[ERROR:0@1.2] global loadsave.cpp ... imdecode_ ... can't read header")
# reached the terminal and the daemon's journal beside facesortd's own words for the same file
# ("unreadable - not an image OpenCV can decode"). Read when cv2 is first imported; a user's
# explicit setting (OPENCV_LOG_LEVEL=DEBUG to look into a decoder) wins.
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")

# One BLAS thread: facesortd already runs work in parallel, and OpenBLAS threads competing with
# another busy process on a 2-core machine made a QR decomposition 200x slower (2.7 s vs 12 ms).
# Must be set before numpy is first imported; a user's explicit setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
